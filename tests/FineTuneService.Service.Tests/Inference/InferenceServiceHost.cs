using System.ClientModel;
using System.Net.Http.Headers;
using FineTuneService.Api.Auth;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using FineTuneService.Core.Models;
using FineTuneService.Service.Tests.Api;
using FineTuneService.Service.Tests.Infrastructure;
using FineTuneService.Service.Tests.Worker;
using FineTuneService.Worker.Hosting;
using FineTuneService.Worker.Inference;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;

namespace FineTuneService.Service.Tests.Inference;

/// <summary>
/// The API host on a real Kestrel loopback socket with the worker host's servers in the same process: the device
/// server (training), and the inference server on its own Kestrel socket, registered in PostgreSQL, which the API
/// finds and forwards to. The tiny base model is imported. One per test class; tests create their own tenants.
/// </summary>
public sealed class InferenceServiceHost : IAsyncLifetime, IAsyncDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private ApiFactory? _api;
    private string? _cache;

    public static Dictionary<string, string?> Settings(string cache) => new TestWorkerSettings(cache)
    {
        ["Worker:CheckpointEverySteps"] = "3",
        ["Worker:MetricsEverySteps"] = "1",
        ["Inference:HeartbeatInterval"] = "00:00:00.5",
        ["Inference:MaxBatchSize"] = "8",
    };

    public async Task<ApiFactory> GetAsync(PostgresServer server, Action<IDictionary<string, string?>>? settings = null)
    {
        await _gate.WaitAsync();
        try
        {
            if (_api is not null) return _api;
            _cache = Directory.CreateTempSubdirectory("fts-inference-cache-").FullName;
            var values = Settings(_cache);
            settings?.Invoke(values);
            var api = new ApiFactory(await server.CreateDatabaseAsync(), settings: values, configureServices: services =>
            {
                services.AddFineTuneWorker();
                services.AddInferenceServer(new ConfigurationBuilder().Build());
            });
            api.UseKestrel(0);
            api.StartServer();
            await api.Services.GetRequiredService<BaseModelRegistry>().ImportAsync(TinyBaseModel.Id, TinyBaseModel.Folder, CancellationToken.None);
            return _api = api;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>The API's real socket address.</summary>
    public static Uri Address(ApiFactory api) =>
        new(api.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());

    /// <summary>The official OpenAI SDK pointed at the API's real socket.</summary>
    public static OpenAIClient Sdk(ApiFactory api, string key) =>
        new(new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri(Address(api), "/v1/") });

    /// <summary>A plain client on the real socket.</summary>
    public static HttpClient Http(ApiFactory api, string key) => new()
    {
        BaseAddress = Address(api),
        DefaultRequestHeaders = { Authorization = new AuthenticationHeaderValue("Bearer", key) },
    };

    /// <summary>Creates a tenant through the admin API on the real socket; returns its id and key.</summary>
    public static async Task<(string TenantId, string Key)> CreateTenantAsync(ApiFactory api, string name)
    {
        using var admin = Http(api, AuthOptions.DevelopmentAdminKey);
        var tenant = await admin.PostJsonAsync("/v1/admin/tenants", new { name });
        return (tenant["id"]!.GetValue<string>(), tenant["api_key"]!.GetValue<string>());
    }

    public Task InitializeAsync() => Task.CompletedTask;

    async ValueTask IAsyncDisposable.DisposeAsync() => await DisposeAsync();

    public async Task DisposeAsync()
    {
        if (_api is not null) await _api.DisposeAsync();
        if (_cache is not null) Directory.Delete(_cache, recursive: true);
    }
}
