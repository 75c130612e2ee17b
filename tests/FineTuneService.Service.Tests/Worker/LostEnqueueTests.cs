using FineTuneService.Core.Domain;
using FineTuneService.Core.Jobs;
using FineTuneService.Service.Tests.Api;
using FineTuneService.Service.Tests.Infrastructure;
using Hangfire;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace FineTuneService.Service.Tests.Worker;

/// <summary>
/// No lost work: the API dies between committing a row and enqueueing its Hangfire job (a <see cref="DyingScheduler"/>
/// throws there, then the host is disposed as the crash would have), and the work still happens, because the row's
/// outbox message committed with it and another process's sweeper sends it.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class LostEnqueueTests(PostgresServer server)
{
    /// <summary>A quick sweeper for the process that starts after the crash.</summary>
    private static readonly Dictionary<string, string?> Sweeping = new()
    {
        ["Outbox:SweepInterval"] = "00:00:00.2",
        ["Outbox:RetryAfter"] = "00:00:01",
    };

    [Fact]
    public async Task A_job_committed_queued_whose_enqueue_was_lost_still_runs()
    {
        await using var observer = await WorkerHost.StartAsync(server, trains: false);
        string jobId;
        await using (var dying = new ApiFactory(observer.ConnectionString, configureServices: s => DyingScheduler.Install(s, Dispatch.Training)))
        {
            var (_, _, client) = await dying.CreateTenantAsync("lost-job");
            var file = await client.UploadValidatedAsync(TinyBaseModel.Jsonl(12));
            var job = await client.PostJsonAsync("/v1/fine_tuning/jobs", new
            {
                model = TinyBaseModel.Id, training_file = file["id"]!.GetValue<string>(), hyperparameters = new { n_epochs = 1, batch_size = 4 },
            });
            jobId = job["id"]!.GetValue<string>();
            Assert.Equal("queued", job["status"]!.GetValue<string>());
        } // the API is gone: the job is queued in the database and on no Hangfire queue

        Assert.DoesNotContain(jobId, GpuQueue(observer)); // the base model's safety-layer locator may be there
        Assert.Equal([jobId], await OutboxAsync(observer, Dispatch.Training));

        await using var worker = await WorkerHost.StartAsync(server, database: observer.ConnectionString, settings: Sweeping);
        var done = await worker.WaitForTerminalAsync(jobId);
        Assert.True(done.Status == JobStatus.Succeeded, done.Error?.ToJsonString());
        Assert.Empty(await OutboxAsync(worker, Dispatch.Training));
    }

    [Fact]
    public async Task A_file_whose_validation_enqueue_was_lost_is_validated_after_all()
    {
        await using var observer = await WorkerHost.StartAsync(server, trains: false);
        string fileId;
        await using (var dying = new ApiFactory(observer.ConnectionString, configureServices: s => DyingScheduler.Install(s, Dispatch.FileValidation)))
        {
            var (_, _, client) = await dying.CreateTenantAsync("lost-validation");
            var file = await client.UploadAsync(TinyBaseModel.Jsonl(12));
            fileId = file["id"]!.GetValue<string>();
            Assert.Equal("uploaded", file["status"]!.GetValue<string>());
        }
        Assert.Equal([fileId], await OutboxAsync(observer, Dispatch.FileValidation));

        // The restarted API's sweeper sends the validation its predecessor never enqueued.
        await using var restarted = new ApiFactory(observer.ConnectionString, settings: Sweeping);
        _ = restarted.Server;
        var validated = await Eventually.UntilAsync(() => FileStatusAsync(observer, fileId), s => s != FileStatus.Uploaded, TimeSpan.FromSeconds(60));
        Assert.Equal(FileStatus.Processed, validated);
    }

    [Fact]
    public async Task A_file_whose_screening_enqueue_was_lost_is_sent_to_screening_after_all()
    {
        await using var observer = await WorkerHost.StartAsync(server, trains: false);
        var screening = new Dictionary<string, string?> { ["Files:ScreenTrainingData"] = "true" };
        string fileId;
        await using (var dying = new ApiFactory(observer.ConnectionString, settings: screening,
                         configureServices: s => DyingScheduler.Install(s, Dispatch.FileScreening)))
        {
            var (_, _, client) = await dying.CreateTenantAsync("lost-screening");
            fileId = (await client.UploadAsync(TinyBaseModel.Jsonl(12)))["id"]!.GetValue<string>();
            // Validated on this API's own Hangfire server; the screening enqueue after that commit dies.
            Assert.Equal(FileStatus.AwaitingScreening,
                await Eventually.UntilAsync(() => FileStatusAsync(observer, fileId), s => s != FileStatus.Uploaded, TimeSpan.FromSeconds(60)));
            Assert.Equal([fileId], await Eventually.UntilAsync(() => OutboxAsync(observer, Dispatch.FileScreening), ids => ids.Count > 0, TimeSpan.FromSeconds(10)));
        }
        Assert.Empty(ScreeningQueue(observer));

        // Screening runs in the worker host; here it is enough that the restarted API put the file on its queue.
        await using var restarted = new ApiFactory(observer.ConnectionString, settings: new Dictionary<string, string?>(Sweeping) { ["Files:ScreenTrainingData"] = "true" });
        _ = restarted.Server;
        var queued = await Eventually.UntilAsync(() => Task.FromResult(ScreeningQueue(observer)), q => q.Count > 0, TimeSpan.FromSeconds(60));
        Assert.Equal([fileId], queued);
        Assert.Empty(await OutboxAsync(observer, Dispatch.FileScreening));
        Assert.Equal(FileStatus.AwaitingScreening, await FileStatusAsync(observer, fileId));
    }

    private static async Task<List<string>> OutboxAsync(WorkerHost host, Dispatch dispatch)
    {
        await using var db = await host.CreateDbContextAsync();
        return await db.Outbox.AsNoTracking().Where(m => m.Dispatch == dispatch).Select(m => m.TargetId).ToListAsync();
    }

    private static async Task<FileStatus> FileStatusAsync(WorkerHost host, string fileId)
    {
        await using var db = await host.CreateDbContextAsync();
        return await db.Files.AsNoTracking().Where(f => f.Id == fileId).Select(f => f.Status).SingleAsync();
    }

    private static List<string> GpuQueue(WorkerHost host) => Enqueued(host, Queues.Gpu);

    private static List<string> ScreeningQueue(WorkerHost host) => Enqueued(host, Queues.Screening);

    /// <summary>The ids (first argument) of the Hangfire jobs waiting on <paramref name="queue"/>.</summary>
    private static List<string> Enqueued(WorkerHost host, string queue) =>
        host.Services.GetRequiredService<JobStorage>().GetMonitoringApi().EnqueuedJobs(queue, 0, 100)
            .Select(j => (string)j.Value.Job.Args[0]).ToList();
}
