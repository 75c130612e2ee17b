using FineTuneService.Core.Models;
using FineTuneService.Service.Tests.Api;
using FineTuneService.Service.Tests.Infrastructure;
using FineTuneService.Service.Tests.Worker;
using FineTuneService.Worker.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace FineTuneService.Service.Tests.Safety;

/// <summary>
/// The API host with the worker host's servers in the same process (device server, screening server), the tiny base
/// model imported, and training-data screening on: what the safety features need end to end. One per test class
/// (starting it costs seconds); tests isolate themselves by creating their own tenants.
/// </summary>
public sealed class SafetyServiceHost : IAsyncLifetime
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private ApiFactory? _api;
    private string? _cache;

    public async Task<ApiFactory> GetAsync(PostgresServer server)
    {
        await _gate.WaitAsync();
        try
        {
            if (_api is not null) return _api;
            _cache = Directory.CreateTempSubdirectory("fts-safety-cache-").FullName;
            // Small shipped prompt sets: the tiny model answers them in well under a second.
            var settings = new TestWorkerSettings(_cache)
            {
                ["Files:ScreenTrainingData"] = "true",
                ["Worker:RecoveryInterval"] = TestWorkerSettings.FastRecoveryInterval,
                ["Worker:CheckpointEverySteps"] = "50",
            }.WithSafetyEvaluation(harmfulPrompts: 8, safePrompts: 8, maxNewTokens: 8);
            var api = new ApiFactory(await server.CreateDatabaseAsync(), settings: settings, configureServices: services => services.AddFineTuneWorker());
            _ = api.Server;
            await api.Services.GetRequiredService<BaseModelRegistry>().ImportAsync(TinyBaseModel.Id, TinyBaseModel.Folder, CancellationToken.None);
            return _api = api;
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
        if (_cache is not null) Directory.Delete(_cache, recursive: true);
    }
}
