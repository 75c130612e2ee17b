using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using FineTuneService.Ml.Inference;
using FineTuneService.Ml.Runtime;
using TorchSharp;

namespace FineTuneService.Research.Benchmarks;

/// <summary>
/// Serving benchmark of a running service (<c>deploy/dev/run.sh</c>): streamed chat completions through the API at
/// several concurrencies (time to first token, inter-token latency, aggregate tokens/s), the same requests sent
/// straight to the worker's inference endpoint (what the API's forwarding adds), the engine's raw batched decoding
/// of the same model in this process, and the memory of 1 and 4 loaded copies. Writes results.json and results.md.
/// </summary>
public static class InferenceBenchmark
{
    /// <param name="WorkerUrl">The worker inference endpoint's URL and secret (its <c>inference_endpoints</c> row), for the direct runs.</param>
    public sealed record Settings(string Url, string AdminKey, string Model, string ModelFolder, string WorkerUrl, string WorkerToken, string Output,
        IReadOnlyList<int> Concurrency, int MaxTokens, int Rounds);

    public sealed record LoadFigures(string Path, int Concurrency, int Requests, double TtftP50Ms, double TtftP99Ms, double InterTokenP50Ms,
        double InterTokenP99Ms, double TokensPerSecond, long Tokens, double Seconds);

    public sealed record EngineFigures(int Sequences, int NewTokens, double Seconds, double TokensPerSecond);

    /// <summary>The HTTP runs' requests sent straight to the engine's continuous batcher in this process: the same work without HTTP.</summary>
    public sealed record EngineRequestFigures(int Concurrency, int Requests, long Tokens, double Seconds, double TokensPerSecond);

    /// <summary>Median latency of one-token completions through the API and straight to the worker, sent alternately.</summary>
    public sealed record ForwardingFigures(int Samples, double ApiP50Ms, double WorkerP50Ms, double AddedP50Ms);

    public sealed record MemoryFigures(int ModelsLoaded, long WeightsBytes, long ResidentBytes, long PeakResidentBytes);

    private const int WarmUpRounds = 3;
    private const int ForwardingSamples = 500;

    public static async Task RunAsync(Settings settings, Action<string> log, CancellationToken cancellationToken)
    {
        using var http = new HttpClient { BaseAddress = new Uri(settings.Url), Timeout = TimeSpan.FromMinutes(10) };
        var key = await CreateTenantAsync(http, settings.AdminKey, cancellationToken);
        var (workerUrl, workerToken) = (settings.WorkerUrl, settings.WorkerToken);
        var tenant = key.TenantId;
        log($"API {settings.Url}, worker endpoint {workerUrl}, model {settings.Model}");

        // One warm-up request loads the model on the worker.
        await StreamAsync(ApiClient(settings.Url, key.Key), settings.Model, Prompt(0), settings.MaxTokens, cancellationToken);

        var load = new List<LoadFigures>();
        using var api = ApiClient(settings.Url, key.Key);
        using var worker = WorkerClient(workerUrl, workerToken, tenant);
        foreach (var concurrency in settings.Concurrency)
        {
            // The first batches of a new size are slower (the worker's batch and its caches grow, and the hosts' hot code
            // is still being recompiled by the tiered JIT, which took 40 % of their CPU in a profile of the first round):
            // untimed rounds at this concurrency on each path, so neither path pays for it alone.
            for (var warmUp = 0; warmUp < WarmUpRounds; warmUp++)
            {
                await MeasureAsync("warm-up", worker, settings with { Rounds = 1 }, concurrency, cancellationToken);
                await MeasureAsync("warm-up", api, settings with { Rounds = 1 }, concurrency, cancellationToken);
            }
            load.Add(await MeasureAsync("api", api, settings, concurrency, cancellationToken));
            log(Describe(load[^1]));
            load.Add(await MeasureAsync("worker", worker, settings, concurrency, cancellationToken));
            log(Describe(load[^1]));
        }

        var forwarding = await MeasureForwardingAsync(api, worker, settings.Model, ForwardingSamples, cancellationToken);
        log($"forwarding: API p50 {forwarding.ApiP50Ms:F2} ms, worker p50 {forwarding.WorkerP50Ms:F2} ms, added {forwarding.AddedP50Ms:F2} ms ({forwarding.Samples} each)");

        // Memory first, while no other copy has been loaded into this process.
        var memory = MeasureMemory(settings.ModelFolder, log);
        var engine = MeasureEngine(settings, settings.Concurrency.Max(), log);
        var sameRequests = await MeasureEngineRequestsAsync(settings, settings.Concurrency.Max(), log, cancellationToken);
        Write(settings, load, forwarding, engine, sameRequests, memory);
    }

    private static string Describe(LoadFigures f) =>
        $"{f.Path,-6} c={f.Concurrency,-3} TTFT p50 {f.TtftP50Ms:F1} ms p99 {f.TtftP99Ms:F1} ms, ITL p50 {f.InterTokenP50Ms:F1} ms, {f.TokensPerSecond:F1} tok/s";

    private static string Prompt(int i) => $"Write two sentences about topic number {i}: rivers, cities and the weather.";

    private static async Task<(string TenantId, string Key)> CreateTenantAsync(HttpClient http, string adminKey, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/admin/tenants") { Content = JsonContent.Create(new { name = $"bench-{Guid.NewGuid():N}"[..20] }) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", adminKey);
        using var response = await http.SendAsync(request, cancellationToken);
        response.EnsureSuccessStatusCode();
        var tenant = JsonNode.Parse(await response.Content.ReadAsStringAsync(cancellationToken))!;
        return (tenant["id"]!.GetValue<string>(), tenant["api_key"]!.GetValue<string>());
    }

    private static HttpClient ApiClient(string url, string key) => new()
    {
        BaseAddress = new Uri(url), Timeout = TimeSpan.FromMinutes(10),
        DefaultRequestHeaders = { Authorization = new AuthenticationHeaderValue("Bearer", key) },
    };

    private static HttpClient WorkerClient(string url, string token, string tenant)
    {
        var client = ApiClient(url, token);
        client.DefaultRequestHeaders.Add("X-FTS-Tenant", tenant);
        return client;
    }

    private sealed record StreamTiming(double TtftMs, IReadOnlyList<double> GapsMs, long Tokens);

    /// <summary>One streamed greedy completion: time to the first content chunk, gaps between content chunks, tokens from the usage chunk.</summary>
    private static async Task<StreamTiming> StreamAsync(HttpClient client, string model, string prompt, int maxTokens, CancellationToken cancellationToken)
    {
        var body = JsonSerializer.Serialize(new
        {
            model, messages = new[] { new { role = "user", content = prompt } }, temperature = 0, max_tokens = maxTokens, stream = true,
            stream_options = new { include_usage = true },
        });
        var clock = Stopwatch.StartNew();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        response.EnsureSuccessStatusCode();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken));
        double? first = null, last = null;
        var gaps = new List<double>();
        long tokens = 0;
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
            var data = line["data: ".Length..];
            if (data == "[DONE]") break;
            // A light read, as a load generator's: the client shares the cores with the service it measures.
            using var chunk = JsonDocument.Parse(data);
            var root = chunk.RootElement;
            if (root.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object) tokens = usage.GetProperty("completion_tokens").GetInt64();
            var hasContent = root.TryGetProperty("choices", out var choices) && choices.EnumerateArray().Any(c =>
                c.TryGetProperty("delta", out var delta) && delta.TryGetProperty("content", out var content)
                && content.ValueKind == JsonValueKind.String && content.GetString()!.Length > 0);
            if (!hasContent) continue;
            var now = clock.Elapsed.TotalMilliseconds;
            if (first is null) first = now;
            else gaps.Add(now - last!.Value);
            last = now;
        }
        return new StreamTiming(first ?? clock.Elapsed.TotalMilliseconds, gaps, tokens);
    }

    private static async Task<LoadFigures> MeasureAsync(string path, HttpClient client, Settings settings, int concurrency, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var timings = await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async stream =>
        {
            var results = new List<StreamTiming>();
            for (var round = 0; round < settings.Rounds; round++)
                results.Add(await StreamAsync(client, settings.Model, Prompt(stream * settings.Rounds + round), settings.MaxTokens, cancellationToken));
            return results;
        }));
        var seconds = clock.Elapsed.TotalSeconds;
        var all = timings.SelectMany(t => t).ToList();
        var ttft = all.Select(t => t.TtftMs).ToList();
        var gaps = all.SelectMany(t => t.GapsMs).DefaultIfEmpty(0).ToList();
        var tokens = all.Sum(t => t.Tokens);
        return new LoadFigures(path, concurrency, all.Count, Percentile(ttft, 50), Percentile(ttft, 99), Percentile(gaps, 50), Percentile(gaps, 99),
            Math.Round(tokens / seconds, 1), tokens, Math.Round(seconds, 2));
    }

    /// <summary>
    /// What the API's hop costs: one-token, non-streamed greedy completions, alternately through the API and straight
    /// to the worker, so both see the same moments of the machine; many samples, since a few streamed requests at one
    /// stream differ by more than the hop from one run to the next.
    /// </summary>
    private static async Task<ForwardingFigures> MeasureForwardingAsync(HttpClient api, HttpClient worker, string model, int samples,
        CancellationToken cancellationToken)
    {
        var body = JsonSerializer.Serialize(new { model, messages = new[] { new { role = "user", content = Prompt(0) } }, temperature = 0, max_tokens = 1 });
        async Task<double> OnceAsync(HttpClient client)
        {
            var clock = Stopwatch.StartNew();
            using var response = await client.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"), cancellationToken);
            await response.Content.ReadAsByteArrayAsync(cancellationToken);
            response.EnsureSuccessStatusCode();
            return clock.Elapsed.TotalMilliseconds;
        }
        for (var i = 0; i < samples / 10; i++)
        {
            await OnceAsync(api);
            await OnceAsync(worker);
        }
        var (viaApi, direct) = (new List<double>(), new List<double>());
        for (var i = 0; i < samples; i++)
        {
            viaApi.Add(await OnceAsync(api));
            direct.Add(await OnceAsync(worker));
        }
        var (apiP50, workerP50) = (Percentile(viaApi, 50), Percentile(direct, 50));
        return new ForwardingFigures(samples, apiP50, workerP50, Math.Round(apiP50 - workerP50, 2));
    }

    /// <summary>The engine alone: <paramref name="sequences"/> greedy sequences of the same model decoded together by <see cref="BatchDecoder"/>.</summary>
    private static EngineFigures MeasureEngine(Settings settings, int sequences, Action<string> log)
    {
        using var serving = ServingModel.Load(settings.ModelFolder, torch.CPU, sequences, "bench");
        var prompts = Enumerable.Range(0, sequences)
            .Select(i => serving.EncodePrompt([new FineTuneService.Datasets.ChatMessage("user", Prompt(i))])).ToList();
        // Fixed length, no stop tokens: the same work as the HTTP runs at their longest.
        var options = new SequenceOptions { MaxNewTokens = settings.MaxTokens, StopTokenIds = new HashSet<int>() };
        using (var warm = new BatchDecoder(serving.Model))
        {
            warm.Add(prompts[0], options with { MaxNewTokens = 2 });
            while (warm.Count > 0) warm.Step();
        }
        using var decoder = new BatchDecoder(serving.Model);
        var clock = Stopwatch.StartNew();
        long tokens = 0;
        tokens += decoder.AddRange(prompts.Select(p => ((IReadOnlyList<int>)p, options)).ToList()).Count;
        while (decoder.Count > 0) tokens += decoder.Step().Count(t => t.TokenId is not null);
        var seconds = clock.Elapsed.TotalSeconds;
        var figures = new EngineFigures(sequences, (int)tokens, Math.Round(seconds, 2), Math.Round(tokens / seconds, 1));
        log($"engine B={sequences}: {figures.TokensPerSecond:F1} tok/s ({tokens} tokens)");
        return figures;
    }

    /// <summary>
    /// The engine alone on the HTTP runs' own workload: the same prompts, limit and stop tokens, <paramref name="concurrency"/>
    /// callers each sending its requests one after another to the model's <see cref="ContinuousBatcher"/>. Greedy
    /// answers end at the model's stop tokens, mostly well before the limit, so this is the figure HTTP is compared with:
    /// the fixed-length decode above does more tokens per request and none of the joins.
    /// </summary>
    private static async Task<EngineRequestFigures> MeasureEngineRequestsAsync(Settings settings, int concurrency, Action<string> log,
        CancellationToken cancellationToken)
    {
        using var serving = ServingModel.Load(settings.ModelFolder, torch.CPU, concurrency, "bench-requests");
        var options = new SequenceOptions { MaxNewTokens = settings.MaxTokens, StopTokenIds = serving.StopTokenIds };
        async Task<long> GenerateAsync(int index)
        {
            var prompt = serving.EncodePrompt([new FineTuneService.Datasets.ChatMessage("user", Prompt(index))]);
            long tokens = 0;
            await foreach (var token in serving.Batcher.GenerateAsync(prompt, options, cancellationToken))
                if (token.TokenId is not null) tokens++;
            return tokens;
        }
        async Task<long> RoundsAsync(int stream)
        {
            long tokens = 0;
            for (var round = 0; round < settings.Rounds; round++) tokens += await GenerateAsync(stream * settings.Rounds + round);
            return tokens;
        }

        for (var warmUp = 0; warmUp < WarmUpRounds; warmUp++) await Task.WhenAll(Enumerable.Range(0, concurrency).Select(RoundsAsync)); // as the HTTP paths get
        var clock = Stopwatch.StartNew();
        var total = (await Task.WhenAll(Enumerable.Range(0, concurrency).Select(RoundsAsync))).Sum();
        var seconds = clock.Elapsed.TotalSeconds;
        var figures = new EngineRequestFigures(concurrency, concurrency * settings.Rounds, total, Math.Round(seconds, 2), Math.Round(total / seconds, 1));
        log($"engine, the HTTP runs' requests at c={concurrency}: {figures.TokensPerSecond:F1} tok/s ({total} tokens)");
        return figures;
    }

    private static IReadOnlyList<MemoryFigures> MeasureMemory(string folder, Action<string> log)
    {
        var figures = new List<MemoryFigures>();
        var loaded = new List<ServingModel>();
        try
        {
            foreach (var count in new[] { 1, 4 })
            {
                while (loaded.Count < count) loaded.Add(ServingModel.Load(folder, torch.CPU, 1, $"copy-{loaded.Count}"));
                GC.Collect();
                var (resident, peak) = ProcessMemory();
                figures.Add(new MemoryFigures(count, loaded.Sum(m => m.ParameterBytes), resident, peak));
                log($"{count} model(s) loaded: {loaded.Sum(m => m.ParameterBytes) / 1048576.0:F1} MiB weights, RSS {resident / 1048576.0:F1} MiB, peak {peak / 1048576.0:F1} MiB");
            }
        }
        finally
        {
            foreach (var model in loaded) model.Dispose();
        }
        return figures;
    }

    /// <summary>VmRSS and VmHWM of this process (Linux), in bytes.</summary>
    private static (long Resident, long Peak) ProcessMemory()
    {
        long Read(string field) => File.ReadLines("/proc/self/status").Where(l => l.StartsWith(field + ":", StringComparison.Ordinal))
            .Select(l => long.Parse(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024).FirstOrDefault();
        return (Read("VmRSS"), Read("VmHWM"));
    }

    private static double Percentile(IReadOnlyList<double> values, double percentile)
    {
        var sorted = values.Order().ToList();
        var rank = (int)Math.Ceiling(percentile / 100.0 * sorted.Count) - 1;
        return Math.Round(sorted[Math.Clamp(rank, 0, sorted.Count - 1)], 2);
    }

    private static void Write(Settings settings, IReadOnlyList<LoadFigures> load, ForwardingFigures forwarding, EngineFigures engine, EngineRequestFigures sameRequests,
        IReadOnlyList<MemoryFigures> memory)
    {
        Directory.CreateDirectory(settings.Output);
        var json = new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
        File.WriteAllText(Path.Combine(settings.Output, "results.json"), JsonSerializer.Serialize(new
        {
            settings.Model, settings.MaxTokens, settings.Rounds, machine = Environment.ProcessorCount + " cores", threads = torch.get_num_threads(),
            load, forwarding, engine, engine_same_requests = sameRequests, omp_wait_policy = CpuThreadWaits.NativePolicy(), memory, measured_at = TimeProvider.System.GetUtcNow(),
        }, json));

        var top = settings.Concurrency.Max();
        var apiTop = load.Single(l => l.Path == "api" && l.Concurrency == top);
        var api1 = load.Single(l => l.Path == "api" && l.Concurrency == settings.Concurrency.Min());
        var worker1 = load.Single(l => l.Path == "worker" && l.Concurrency == settings.Concurrency.Min());
        var text = new StringBuilder()
            .AppendLine("# Inference benchmark")
            .AppendLine()
            .AppendLine($"Model `{settings.Model}`, greedy, {settings.MaxTokens} new tokens per request, {settings.Rounds} requests per stream, {Environment.ProcessorCount} cores.")
            .AppendLine("Produced by `fts bench inference`; README.md in this folder gives the command.")
            .AppendLine()
            .AppendLine("| path | streams | TTFT p50 (ms) | TTFT p99 (ms) | inter-token p50 (ms) | inter-token p99 (ms) | tokens/s |")
            .AppendLine("|---|---|---|---|---|---|---|");
        foreach (var f in load)
            text.AppendLine($"| {f.Path} | {f.Concurrency} | {f.TtftP50Ms:F1} | {f.TtftP99Ms:F1} | {f.InterTokenP50Ms:F1} | {f.InterTokenP99Ms:F1} | {f.TokensPerSecond:F1} |");
        text.AppendLine()
            .AppendLine($"- Raw engine on the same requests ({sameRequests.Requests} requests from {sameRequests.Concurrency} callers straight to the model's continuous batcher in one process, " +
                $"{sameRequests.Tokens} tokens): **{sameRequests.TokensPerSecond:F1} tokens/s**.")
            .AppendLine($"- HTTP at {top} streams reaches **{100 * apiTop.TokensPerSecond / sameRequests.TokensPerSecond:F0} %** of the raw engine on the same requests (goal: at least 80 %).")
            .AppendLine($"- Raw engine's fixed-length decode, {engine.Sequences} sequences of {settings.MaxTokens} tokens prefilled together, no stop tokens (the decode peak): {engine.TokensPerSecond:F1} tokens/s; " +
                $"HTTP at {top} streams is {100 * apiTop.TokensPerSecond / engine.TokensPerSecond:F0} % of it.")
            .AppendLine($"- The API's forwarding adds **{forwarding.AddedP50Ms:F2} ms** at p50 ({forwarding.Samples} one-token completions each way, sent alternately: " +
                $"{forwarding.ApiP50Ms:F2} ms through the API, {forwarding.WorkerP50Ms:F2} ms straight to the worker; goal: at most 2 ms). " +
                $"The streamed runs at one stream above differ by {api1.TtftP50Ms - worker1.TtftP50Ms:F1} ms in TTFT p50, over {api1.Requests} requests each.")
            .AppendLine();
        foreach (var m in memory)
            text.AppendLine($"- {m.ModelsLoaded} model(s) loaded: {m.WeightsBytes / 1048576.0:F1} MiB of weights, resident {m.ResidentBytes / 1048576.0:F0} MiB (peak {m.PeakResidentBytes / 1048576.0:F0} MiB) in the benchmark process.");
        File.WriteAllText(Path.Combine(settings.Output, "results.md"), text.ToString());
    }
}
