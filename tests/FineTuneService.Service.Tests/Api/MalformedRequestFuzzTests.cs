using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using FineTuneService.Api.Auth;
using FineTuneService.Service.Tests.Infrastructure;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace FineTuneService.Service.Tests.Api;

/// <summary>
/// Seeded malformed requests against every mapped route over a real loopback Kestrel socket: broken JSON, values of
/// every wrong type and range (NUL characters, lone surrogates, numbers past int and long), wrong content types,
/// broken multipart bodies, invalid UTF-8, bad query strings, and raw-socket requests that only a real server sees
/// (bodies shorter than their Content-Length, oversized headers, broken chunking). No answer may be a 5xx, no
/// connection may close without an answer, no unhandled error may be logged, and the service still works afterwards.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed partial class MalformedRequestFuzzTests(PostgresServer server, ITestOutputHelper output)
{
    private const int Seed = 20261201;
    private const int Requests = 400;

    [Fact]
    public async Task Hundreds_of_malformed_requests_across_every_route_get_4xx_and_the_service_keeps_answering()
    {
        var logs = new CollectingLoggerProvider(LogLevel.Error);
        await using var api = await ApiFactory.StartAsync(server, realSocket: true, configureServices: services =>
            services.AddSingleton<ILoggerProvider>(logs));
        var (_, key, tenant) = await api.CreateTenantAsync("fuzz");
        var file = await tenant.UploadValidatedAsync(Datasets.ValidChat());
        var fileId = file["id"]!.GetValue<string>();
        var job = await tenant.PostJsonAsync("/v1/fine_tuning/jobs", new { model = ApiFactory.BaseModelId, training_file = fileId });
        var ids = new[] { fileId, job["id"]!.GetValue<string>(), ApiFactory.BaseModelId, "ftjob-nope", "%00", "..%2f..", new string('x', 300) };

        var routes = Routes(api);
        Assert.True(routes.Count >= 30, $"only {routes.Count} routes found");
        var random = new Random(Seed);
        var keys = new[] { key, AuthOptions.DevelopmentAdminKey, null, "sk-fts-wrong" };
        var serverErrors = new List<string>();
        using var client = new HttpClient { BaseAddress = api.ServerAddress, Timeout = TimeSpan.FromSeconds(60) };

        for (var i = 0; i < Requests; i++)
        {
            var route = routes[random.Next(routes.Count)];
            var method = random.Next(10) == 0 ? Pick(random, ["GET", "POST", "PUT", "DELETE", "PATCH"]) : route.Method;
            var path = Path(random, route.Pattern, ids) + Query(random);
            var authKey = keys[random.Next(keys.Length)];
            var outcome = random.Next(8) == 0
                ? await RawSocketAsync(api.ServerAddress, random, method, path, authKey)
                : await HttpAsync(client, random, method, path, authKey);
            if (outcome.Status >= 500 || (outcome.Status is null && outcome.NeedsAnswer))
                serverErrors.Add($"#{i} {outcome.Sent} -> {outcome.Status?.ToString() ?? "connection closed without an answer"}");
        }

        // Still serving, and still correct, after all of that.
        var models = await tenant.GetJsonAsync("/v1/models");
        Assert.Contains(models["data"]!.AsArray(), m => m!["id"]!.GetValue<string>() == ApiFactory.BaseModelId);
        Assert.Equal("processed", (await tenant.UploadValidatedAsync(Datasets.ValidChat()))["status"]!.GetValue<string>());

        foreach (var failure in serverErrors) output.WriteLine(failure);
        Assert.True(serverErrors.Count == 0, $"{serverErrors.Count} of {Requests} requests (seed {Seed}) got a 5xx or no answer:\n{string.Join('\n', serverErrors.Take(20))}");
        var unhandled = logs.Entries.Where(e => e.Category.EndsWith("OpenAiExceptionHandler", StringComparison.Ordinal)).ToList();
        Assert.True(unhandled.Count == 0, "unhandled errors were logged:\n" + string.Join('\n', unhandled.Take(5)));
    }

    private sealed record Route(string Method, string Pattern);

    /// <summary>What came back for one request; a client that abandons its own request needs no answer.</summary>
    private sealed record Outcome(int? Status, string Sent, bool NeedsAnswer = true);

    /// <summary>Every endpoint the API maps, from its own routing table, plus the non-endpoint paths (Swagger, Hangfire).</summary>
    private static List<Route> Routes(ApiFactory api)
    {
        var routes = api.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .SelectMany(e => (e.Metadata.GetMetadata<HttpMethodMetadata>()?.HttpMethods ?? ["GET"])
                .Select(m => new Route(m, "/" + e.RoutePattern.RawText!.TrimStart('/'))))
            .ToList();
        routes.AddRange([new("GET", "/swagger/v1/swagger.json"), new("GET", "/hangfire"), new("POST", "/hangfire/stats"), new("GET", "/v1/nope")]);
        return routes;
    }

    [GeneratedRegex(@"\{[^}]+\}")]
    private static partial Regex RouteParameter();

    private static string Path(Random random, string pattern, string[] ids) =>
        RouteParameter().Replace(pattern, _ => random.Next(3) == 0 ? Uri.EscapeDataString(Text(random)) : ids[random.Next(ids.Length)]);

    private static string Query(Random random) => random.Next(3) switch
    {
        0 => "",
        1 => "?" + string.Join('&', Enumerable.Range(0, random.Next(1, 4)).Select(_ =>
            $"{Pick(random, ["limit", "after", "order", "purpose", "metadata[team]", "metadata", "tenant", "review", "gate", "min_hs", "sort", "job_id", "decision"])}" +
            $"={Uri.EscapeDataString(Pick(random, ["-1", "0", "100001", "abc", "1e999", "null", "asc", "sideways", "\u0000", "ftjob-nope", "held", "NaN", new string('9', 40)]))}")),
        _ => "?" + Pick(random, ["limit", "limit=", "=", "&&&", "%zz", "after=%C3%28", "a[b[c]]=1"]),
    };

    private static async Task<Outcome> HttpAsync(HttpClient client, Random random, string method, string path, string? key)
    {
        var (content, description) = Body(random);
        using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = content };
        if (key is not null) request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + key);
        // Header values an HTTP client can send (printable ASCII); other bytes in headers go through the raw socket.
        if (random.Next(6) == 0) request.Headers.TryAddWithoutValidation("Idempotency-Key", Pick(random, ["key \"quoted\" %00 {}", new string('k', 300), "", "ftjob-x"]));
        try
        {
            using var response = await client.SendAsync(request);
            await response.Content.ReadAsByteArrayAsync();
            return new Outcome((int)response.StatusCode, $"{method} {path} [{description}]");
        }
        catch (HttpRequestException e)
        {
            return new Outcome(null, $"{method} {path} [{description}]: {e.Message}");
        }
    }

    /// <summary>A malformed (or occasionally valid-looking but wrong) body with its content type.</summary>
    private static (HttpContent? Content, string Description) Body(Random random)
    {
        switch (random.Next(9))
        {
            case 0: return (null, "no body");
            case 1:
            {
                var json = RandomObject(random, depth: 0).ToJsonString();
                return (Bytes(json, "application/json"), "json " + Clip(json));
            }
            case 2:
            {
                var json = RandomObject(random, depth: 0).ToJsonString();
                var cut = json[..random.Next(json.Length)];
                return (Bytes(cut, "application/json"), "truncated json " + Clip(cut));
            }
            case 3: return (Raw([0x7b, 0x22, 0x6e, 0x61, 0x6d, 0x65, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0xff, 0xfe, 0x22, 0x7d], "application/json"), "invalid utf-8 json");
            case 4:
            {
                var json = RandomObject(random, depth: 0).ToJsonString();
                var type = Pick(random, ["text/plain", "application/xml", "multipart/form-data", "application/x-www-form-urlencoded", "application/json; charset=latin1", "*/*", "garbage"]);
                return (Bytes(json, type), $"json as {type}");
            }
            case 5: return (Bytes(new string('[', 5000) + new string(']', 5000), "application/json"), "deeply nested json");
            case 6: return (Bytes(Pick(random, ["", "null", "[]", "\"text\"", "12", "{}", "{\"a\":1,\"a\":2}", "{\"name\": \"\\u0000\"}", "{\"name\": \"\\ud800\"}"]), "application/json"), "small json");
            default:
            {
                var (body, boundary, description) = Multipart(random);
                var content = new ByteArrayContent(body);
                content.Headers.TryAddWithoutValidation("Content-Type", $"multipart/form-data; boundary={boundary}");
                return (content, description);
            }
        }
    }

    /// <summary>Multipart bodies broken in the ways a hand-written client or a cut connection breaks them.</summary>
    private static (byte[] Body, string Boundary, string Description) Multipart(Random random)
    {
        const string b = "zz";
        var part = $"--{b}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nfine-tune\r\n--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n{{\"messages\":[]}}\r\n--{b}--\r\n";
        var cases = new (string Body, string Boundary, string Description)[]
        {
            ($"--{b}\r\n\r\n", b, "boundary then nothing"),
            ($"--{b}", b, "boundary only"),
            ("", b, "empty multipart"),
            (part[..random.Next(part.Length)], b, "truncated multipart"),
            (part.Replace($"--{b}--", ""), b, "no closing boundary"),
            ($"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{new string('a', 20_000)}\"\r\n\r\nx\r\n--{b}--\r\n", b, "header line over the limit"),
            ($"--{b}\r\n" + string.Concat(Enumerable.Range(0, 40).Select(i => $"X-H{i}: v\r\n")) + "\r\nx\r\n--zz--\r\n", b, "too many part headers"),
            (part, new string('b', 100), "boundary over 70 characters"),
            (part, "\"\"", "empty quoted boundary"),
            ($"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename*=UTF-8''%00%C3%28evil\r\n\r\n\u0000\r\n--{b}--\r\n", b, "NUL in filename*"),
            ($"--{b}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n{new string('p', 5000)}\r\n--{b}--\r\n", b, "purpose over its limit"),
            (part.Replace("fine-tune", "fine-tune\u0000"), b, "NUL in purpose"),
        };
        var (body, boundary, description) = cases[random.Next(cases.Length)];
        return (Encoding.UTF8.GetBytes(body), boundary, description);
    }

    /// <summary>
    /// Requests a real socket carries and an in-memory server never sees. A complete request, however malformed, must
    /// get an answer; a client that gives up halfway through its body (it closes the connection) gets none, and the
    /// server must simply carry on (no error logged, checked at the end).
    /// </summary>
    private static async Task<Outcome> RawSocketAsync(Uri address, Random random, string method, string path, string? key)
    {
        var auth = key is null ? "" : $"Authorization: Bearer {key}\r\n";
        var head = $"{method} {path} HTTP/1.1\r\nHost: {address.Authority}\r\n{auth}";
        var (request, description, complete) = random.Next(9) switch
        {
            0 => ($"{head}X-Big: {new string('h', 40_000)}\r\n\r\n", "header over Kestrel's limit", true),
            1 => ($"{head}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n", "broken chunked encoding", true),
            2 => ($"{head}Content-Length: -5\r\n\r\n", "negative Content-Length", true),
            3 => ($"{head}Authorization: Bearer \u00e9\u00e9\r\n\r\n", "non-ASCII header value", true),
            4 => ($"{head}No colon here\r\n\r\n", "header line without a colon", true),
            5 => ($"{method} /{new string('u', 20_000)} HTTP/1.1\r\nHost: x\r\n\r\n", "request line over the limit", true),
            6 => ($"{head}Content-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "Content-Length with chunked", true),
            7 => ($"{head}Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{{\"model\":", "client gone before its Content-Length was sent", false),
            _ => ($"{head}Content-Type: multipart/form-data; boundary=zz\r\nContent-Length: 400\r\n\r\n--zz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n{{", "client gone halfway through a multipart body", false),
        };
        using var socket = new TcpClient();
        await socket.ConnectAsync(address.Host, address.Port);
        var stream = socket.GetStream();
        await stream.WriteAsync(Encoding.Latin1.GetBytes(request));
        if (!complete)
        {
            socket.Client.Close(); // gone: nothing to answer
            return new Outcome(null, $"raw {method} {path} [{description}]", NeedsAnswer: false);
        }
        // Read the answer up to the end of its headers and any Content-Length body; the server may keep the connection open.
        var answer = new MemoryStream();
        var buffer = new byte[8192];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            while (!timeout.IsCancellationRequested && !Encoding.Latin1.GetString(answer.ToArray()).Contains("\r\n\r\n"))
            {
                var read = await stream.ReadAsync(buffer, timeout.Token);
                if (read == 0) break;
                answer.Write(buffer, 0, read);
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException)
        {
            // reset or timed out: whatever arrived is the answer
        }
        var text = Encoding.Latin1.GetString(answer.ToArray());
        var status = StatusLine().Match(text) is { Success: true } m ? int.Parse(m.Groups[1].Value) : (int?)null;
        return new Outcome(status, $"raw {method} {path} [{description}]");
    }

    [GeneratedRegex(@"^HTTP/1\.1 (\d{3})")]
    private static partial Regex StatusLine();

    private static readonly string[] Keys =
    [
        "model", "training_file", "validation_file", "hyperparameters", "method", "seed", "suffix", "metadata", "safety",
        "integrations", "name", "decision", "reason", "reviewer", "judge", "include", "prompt_file", "max_prompts",
        "max_new_tokens", "samples_per_part", "max_harmful_score", "max_harmful_score_increase", "action",
        "unsafe_file_max_ratio", "type", "supervised", "adapter", "strategy", "params", "n_epochs", "batch_size",
        "learning_rate_multiplier", "rank", "alpha", "target_modules", "frozen_layers", "first_layer", "last_layer",
    ];

    private static JsonObject RandomObject(Random random, int depth)
    {
        var result = new JsonObject();
        for (var i = random.Next(1, 6); i > 0; i--) result[Pick(random, Keys)] = RandomValue(random, depth + 1);
        return result;
    }

    private static JsonNode? RandomValue(Random random, int depth) => random.Next(depth > 3 ? 10 : 14) switch
    {
        0 => null,
        1 => random.Next(2) == 0,
        2 => Pick(random, new JsonNode[] { -1, 0, 1, 7, 2147483647, 2147483648L, long.MaxValue, -9223372036854775808L }),
        3 => Pick(random, new JsonNode[] { 1.5, -0.0, 1e308, -1e308, 1e-320, 0.1 }),
        4 => JsonNode.Parse("123456789012345678901234567890"),
        5 => Pick(random, new JsonNode[] { "", "auto", "supervised", "lora", "full", "frozen_layers", "antidote", "none", "all-linear", "approve", "hold", "classifier", "external" }),
        6 => Text(random),
        7 => new string('x', random.Next(2) == 0 ? 70_000 : 300),
        8 => "\u0000",
        9 => "\ud800",
        10 => RandomObject(random, depth),
        11 => new JsonArray(Enumerable.Range(0, random.Next(4)).Select(_ => RandomValue(random, depth + 1)).ToArray()),
        12 => new JsonObject { ["supervised"] = RandomValue(random, depth + 1), ["type"] = RandomValue(random, depth + 1) },
        _ => new JsonObject { ["strategy"] = RandomValue(random, depth + 1), ["params"] = RandomValue(random, depth + 1) },
    };

    /// <summary>Short text mixing ASCII, control characters, surrogates, quotes and non-Latin letters.</summary>
    private static string Text(Random random)
    {
        const string alphabet = "aZ9-_. /\\\"'%<>{}[]\t\r\n\u0000\u0001\u00e9\u4e2d\ud83d\ude00";
        return new string(Enumerable.Range(0, random.Next(1, 20)).Select(_ => alphabet[random.Next(alphabet.Length)]).ToArray());
    }

    private static T Pick<T>(Random random, IReadOnlyList<T> items) => items[random.Next(items.Count)];

    private static ByteArrayContent Bytes(string text, string contentType) => Raw(Encoding.UTF8.GetBytes(text), contentType);

    private static ByteArrayContent Raw(byte[] bytes, string contentType)
    {
        var content = new ByteArrayContent(bytes);
        content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        return content;
    }

    private static string Clip(string text) => text.Length <= 120 ? text : text[..120] + "…";
}
