using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using FineTuneService.Api.Auth;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Service.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace FineTuneService.Service.Tests.Api;

/// <summary>
/// The API host on a fresh database, with real Hangfire (default queue only, as in production). Training-data
/// screening is off unless <paramref name="settings"/> turns it on: it needs the worker host, which
/// <paramref name="configureServices"/> can add to the same process.
/// </summary>
public sealed class ApiFactory(string connectionString, string environment = "Development", IDictionary<string, string?>? settings = null,
    Action<IServiceCollection>? configureServices = null)
    : WebApplicationFactory<FineTuneService.Api.ApiEntryPoint>
{
    public const string BaseModelId = "safetune-test";

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment(environment);
        builder.ConfigureAppConfiguration(configuration => configuration
            .AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["ConnectionStrings:Postgres"] = connectionString,
                ["Database:MigrateOnStartup"] = "true",
                ["Models:Directory"] = "",
                ["Files:ScreenTrainingData"] = "false",
            })
            .AddInMemoryCollection(settings ?? new Dictionary<string, string?>()));
        if (configureServices is not null) builder.ConfigureServices(configureServices);
    }

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        // Each test database has its own pools (EF and Hangfire); drop their idle connections with the host.
        NpgsqlConnection.ClearAllPools();
    }

    /// <param name="realSocket">Serve on a loopback Kestrel socket (<see cref="ServerAddress"/>) instead of the in-memory test server.</param>
    public static async Task<ApiFactory> StartAsync(PostgresServer server, bool realSocket = false, Action<IServiceCollection>? configureServices = null,
        IDictionary<string, string?>? settings = null)
    {
        var factory = new ApiFactory(await server.CreateDatabaseAsync(), settings: settings, configureServices: configureServices);
        if (realSocket) factory.UseKestrel(0);
        factory.StartServer(); // starts the host: migrations, Hangfire server
        await using var scope = factory.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<FineTuneDbContext>();
        db.BaseModels.Add(new BaseModel { Id = BaseModelId, ArtifactSha256 = new string('a', 64), Config = new JsonObject { ["hidden_size"] = 8, ["num_hidden_layers"] = 2 } });
        await db.SaveChangesAsync();
        return factory;
    }

    /// <summary>Where the host listens: the loopback Kestrel address with a real socket, the test server's otherwise.</summary>
    public Uri ServerAddress =>
        Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault() is { } address
            ? new Uri(address)
            : ClientOptions.BaseAddress;

    public async Task<T> WithDbAsync<T>(Func<FineTuneDbContext, Task<T>> work)
    {
        await using var scope = Services.CreateAsyncScope();
        return await work(scope.ServiceProvider.GetRequiredService<FineTuneDbContext>());
    }

    public HttpClient ClientWithKey(string? key)
    {
        var client = CreateClient();
        if (key is not null) client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    public HttpClient AdminClient() => ClientWithKey(AuthOptions.DevelopmentAdminKey);

    /// <summary>Creates a tenant through the admin API; returns its id and a client using its key.</summary>
    public async Task<(string TenantId, string Key, HttpClient Client)> CreateTenantAsync(string name)
    {
        var response = await AdminClient().PostAsJsonAsync("/v1/admin/tenants", new { name });
        response.EnsureSuccessStatusCode();
        var tenant = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        var key = tenant["api_key"]!.GetValue<string>();
        return (tenant["id"]!.GetValue<string>(), key, ClientWithKey(key));
    }
}

internal static class Datasets
{
    public static string ValidChat(int examples = 12) => string.Join('\n', Enumerable.Range(1, examples).Select(i =>
        $$"""{"messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"What is {{i}} + {{i}}?"},{"role":"assistant","content":"{{2 * i}}"}]}"""));

    public static async Task<JsonNode> UploadAsync(this HttpClient client, string content, string filename = "train.jsonl", string purpose = "fine-tune")
    {
        using var form = new MultipartFormDataContent();
        form.Add(new StringContent(purpose), "purpose");
        form.Add(new ByteArrayContent(Encoding.UTF8.GetBytes(content)), "file", filename);
        var response = await client.PostAsync("/v1/files", form);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        return JsonNode.Parse(body)!;
    }

    public static async Task<JsonNode> GetJsonAsync(this HttpClient client, string url)
    {
        var response = await client.GetAsync(url);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{url}: {(int)response.StatusCode} {body}");
        return JsonNode.Parse(body)!;
    }

    public static async Task<JsonNode> PostJsonAsync(this HttpClient client, string url, object? body = null, string? idempotencyKey = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = JsonContent.Create(body ?? new { }) };
        if (idempotencyKey is not null) request.Headers.Add("Idempotency-Key", idempotencyKey);
        var response = await client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{url}: {(int)response.StatusCode} {text}");
        return JsonNode.Parse(text)!;
    }

    /// <summary>Polls until the file leaves "uploaded" (validation runs on the API's Hangfire server).</summary>
    public static async Task<JsonNode> WaitForValidationAsync(this HttpClient client, string fileId)
    {
        var file = await Eventually.UntilAsync(() => client.GetJsonAsync($"/v1/files/{fileId}"),
            f => f["status"]!.GetValue<string>() != "uploaded", TimeSpan.FromSeconds(30));
        return file["status"]!.GetValue<string>() != "uploaded" ? file : throw new TimeoutException($"File {fileId} was not validated: {file}");
    }

    public static async Task<JsonNode> UploadValidatedAsync(this HttpClient client, string content)
    {
        var file = await client.UploadAsync(content);
        return await client.WaitForValidationAsync(file["id"]!.GetValue<string>());
    }

    public static async Task<JsonNode> ErrorAsync(this HttpResponseMessage response, int expectedStatus)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == expectedStatus, $"expected {expectedStatus}, got {(int)response.StatusCode}: {body}");
        var error = JsonNode.Parse(body)!["error"]!.AsObject();
        Assert.True(error.ContainsKey("message") && error.ContainsKey("type") && error.ContainsKey("param") && error.ContainsKey("code"), body);
        return error;
    }
}

/// <summary>
/// One API host per test class (starting one costs seconds): created on first use with the collection's PostgreSQL
/// server, disposed when the class is done. Tests isolate themselves by creating their own tenants.
/// </summary>
public sealed class SharedApi : IAsyncLifetime
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private ApiFactory? _api;

    public async Task<ApiFactory> GetAsync(PostgresServer server)
    {
        await _gate.WaitAsync();
        try
        {
            return _api ??= await ApiFactory.StartAsync(server);
        }
        finally
        {
            _gate.Release();
        }
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_api is not null) await _api.DisposeAsync();
    }
}
