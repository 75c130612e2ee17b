using FineTuneService.Contracts.Jobs;
using System.Text;
using System.Text.Json.Nodes;
using FineTuneService.Core.Artifacts;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Hosting;
using FineTuneService.Core.Jobs;
using FineTuneService.Core.Models;
using FineTuneService.Service.Tests.Infrastructure;
using FineTuneService.Worker.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace FineTuneService.Service.Tests.Worker;

/// <summary>
/// A real worker host (fresh database, Hangfire on PostgreSQL, one CPU device server, crash recovery) with short
/// heartbeat and recovery intervals, plus helpers to seed a tenant, a dataset file and jobs. Without the worker
/// (<c>trains: false</c>) it is only the database, the artifact store and a Hangfire client: a test's view of a
/// database that worker processes train from.
/// </summary>
public sealed class WorkerHost : IAsyncDisposable
{
    public const string TenantId = "tenant-worker-tests";

    private readonly IHost _host;
    private readonly string _cache;

    private WorkerHost(IHost host, string cache)
    {
        _host = host;
        _cache = cache;
    }

    public IServiceProvider Services => _host.Services;

    /// <param name="database">An existing database to share with an earlier host (a restarted worker); fresh when null.</param>
    /// <param name="settings">Extra configuration on top of the test defaults (e.g. safety evaluation sizes).</param>
    /// <param name="trains">False: no device servers, screening or crash recovery in this process.</param>
    /// <param name="services">Extra registrations (e.g. a <see cref="TrainingStepGate"/> on the DbContext).</param>
    /// <param name="logs">Also receives the host's log entries (warnings and up).</param>
    public static async Task<WorkerHost> StartAsync(PostgresServer server, int maxAttempts = 3, string[]? devices = null, string? database = null,
        IDictionary<string, string?>? settings = null, bool trains = true, Action<IServiceCollection>? services = null, ILoggerProvider? logs = null)
    {
        var cache = Directory.CreateTempSubdirectory("fts-worker-cache-").FullName;
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { EnvironmentName = "Development", ContentRootPath = cache });
        var configuration = new TestWorkerSettings(cache)
        {
            ["ConnectionStrings:Postgres"] = database ?? await server.CreateDatabaseAsync(),
            ["Database:MigrateOnStartup"] = "true",
            ["Worker:RecoveryInterval"] = TestWorkerSettings.FastRecoveryInterval,
            ["Worker:MaxAttempts"] = maxAttempts.ToString(),
            ["Worker:CheckpointEverySteps"] = "5",
            ["Worker:MetricsEverySteps"] = "2",
            // Sizes for tests that turn the safety evaluation on (settings: SafetyEvaluation:Enabled).
            ["SafetyEvaluation:HarmfulPrompts"] = "16",
            ["SafetyEvaluation:SafePrompts"] = "8",
            ["SafetyEvaluation:AccuracyExamples"] = "8",
            ["SafetyEvaluation:MaxNewTokens"] = "16",
        };
        devices ??= [];
        for (var i = 0; i < devices.Length; i++) configuration[$"Worker:Devices:{i}"] = devices[i];
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>()) configuration[key] = value;
        builder.Configuration.AddInMemoryCollection(configuration);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        if (logs is not null) builder.Logging.AddProvider(logs);
        builder.AddFineTuneDatabase();
        builder.AddArtifactStore();
        builder.AddHangfireStorage();
        builder.AddBaseModelRegistry();
        if (trains) builder.AddFineTuneWorker();
        services?.Invoke(builder.Services);

        var host = builder.Build();
        await host.StartAsync();
        var worker = new WorkerHost(host, cache);
        await worker.SeedAsync();
        return worker;
    }

    private async Task SeedAsync()
    {
        await Services.GetRequiredService<BaseModelRegistry>().ImportAsync(TinyBaseModel.Id, TinyBaseModel.Folder, CancellationToken.None);
        await using var db = await CreateDbContextAsync();
        if (await db.Tenants.AnyAsync(t => t.Id == TenantId)) return;
        db.Tenants.Add(new Tenant { Id = TenantId, Name = "worker tests" });
        await db.SaveChangesAsync();
    }

    public string ConnectionString => Services.GetRequiredService<IConfiguration>().GetConnectionString("Postgres")!;

    public async Task<FineTuneDbContext> CreateDbContextAsync() =>
        await Services.GetRequiredService<IDbContextFactory<FineTuneDbContext>>().CreateDbContextAsync();

    /// <summary>Stores <paramref name="jsonl"/> as a validated fine-tune file of the test tenant.</summary>
    public async Task<string> UploadFileAsync(string jsonl)
    {
        var bytes = Encoding.UTF8.GetBytes(jsonl);
        var stored = await Services.GetRequiredService<IArtifactStore>().PutAsync(new MemoryStream(bytes), "application/jsonl", CancellationToken.None);
        var file = new StoredFile
        {
            Id = Ids.File(), TenantId = TenantId, Filename = "train.jsonl", Purpose = "fine-tune",
            Bytes = bytes.Length, Sha256 = stored.Sha256, Status = FileStatus.Processed,
        };
        await using var db = await CreateDbContextAsync();
        db.Files.Add(file);
        await db.SaveChangesAsync();
        return file.Id;
    }

    /// <summary>Adds a job row; <paramref name="configure"/> can put it into any state (e.g. a dead worker's).</summary>
    public async Task<FineTuningJob> AddJobAsync(string fileId, int epochs, Action<FineTuningJob>? configure = null, string model = TinyBaseModel.Id,
        JobMethod? method = null)
    {
        var job = new FineTuningJob
        {
            Id = Ids.Job(), TenantId = TenantId, Model = model, TrainingFileId = fileId, Method = method ?? JobMethod.Default,
            Status = JobStatus.Queued, Suffix = "unit", Seed = 7,
            Hyperparameters = new Hyperparameters { Epochs = epochs, BatchSize = 4 },
        };
        configure?.Invoke(job);
        await using var db = await CreateDbContextAsync();
        db.Jobs.Add(job);
        await db.SaveChangesAsync();
        return job;
    }

    public string Enqueue(string jobId) => Services.GetRequiredService<IJobScheduler>().EnqueueTraining(jobId);

    public async Task<FineTuningJob> GetJobAsync(string jobId)
    {
        await using var db = await CreateDbContextAsync();
        return await db.Jobs.AsNoTracking().SingleAsync(j => j.Id == jobId);
    }

    public async Task<List<JobEvent>> EventsAsync(string jobId)
    {
        await using var db = await CreateDbContextAsync();
        return await db.JobEvents.AsNoTracking().Where(e => e.JobId == jobId).OrderBy(e => e.Sequence).ToListAsync();
    }

    /// <summary>Polls the job's events until one matches; on timeout the message carries <paramref name="process"/>'s output.</summary>
    public async Task<JobEvent> WaitForEventAsync(string jobId, Func<JobEvent, bool> match, WorkerProcess? process = null, int timeoutSeconds = 120)
    {
        var found = await Eventually.UntilAsync(async () => (await EventsAsync(jobId)).FirstOrDefault(match),
            e => e is not null, TimeSpan.FromSeconds(timeoutSeconds), TimeSpan.FromMilliseconds(20));
        return found ?? throw new TimeoutException($"No matching event for job {jobId}." +
            (process is null ? "" : $" Worker process {(process.HasExited ? $"exited with {process.ExitCode}" : "still running")}:\n{process.Output}"));
    }

    public async Task<List<JobCheckpoint>> CheckpointsAsync(string jobId)
    {
        await using var db = await CreateDbContextAsync();
        return await db.JobCheckpoints.AsNoTracking().Where(c => c.JobId == jobId).OrderBy(c => c.StepNumber).ToListAsync();
    }

    /// <summary>Polls the job until <paramref name="condition"/> holds; fails with the job's state after the timeout.</summary>
    public async Task<FineTuningJob> WaitForAsync(string jobId, Func<FineTuningJob, bool> condition, int timeoutSeconds = 120)
    {
        var job = await Eventually.UntilAsync(() => GetJobAsync(jobId), condition, TimeSpan.FromSeconds(timeoutSeconds));
        return condition(job) ? job
            : throw new TimeoutException($"Job {jobId} still {job.Status} (control={job.Control}, error={job.Error?.ToJsonString()}) after {timeoutSeconds}s.");
    }

    public Task<FineTuningJob> WaitForTerminalAsync(string jobId, int timeoutSeconds = 120) =>
        WaitForAsync(jobId, j => j.IsTerminal, timeoutSeconds);

    public async Task SetAsync(string jobId, Action<FineTuningJob> change)
    {
        await using var db = await CreateDbContextAsync();
        var job = await db.Jobs.SingleAsync(j => j.Id == jobId);
        change(job);
        await db.SaveChangesAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync();
        _host.Dispose();
        Directory.Delete(_cache, recursive: true);
    }
}
