using FineTuneService.Core.Domain;
using FineTuneService.Service.Tests.Infrastructure;
using Hangfire;
using Hangfire.States;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace FineTuneService.Service.Tests.Worker;

/// <summary>
/// Hangfire delivers at least once, and recovery may enqueue a job again: a delivery of a job that is paused, or that a
/// live worker holds, must leave it exactly as it is. Each test waits for the delivery to finish in Hangfire, so "left
/// alone" is what the worker decided, not a delivery that has not happened yet.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class RepeatedDeliveryTests(PostgresServer server)
{
    [Fact]
    public async Task A_delivery_of_a_paused_job_leaves_it_paused_and_untouched()
    {
        await using var worker = await WorkerHost.StartAsync(server);
        var file = await worker.UploadFileAsync(TinyBaseModel.Jsonl(12));
        var job = await worker.AddJobAsync(file, epochs: 1, j => j.Status = JobStatus.Paused);

        await DeliverAsync(worker, job.Id);

        var after = await worker.GetJobAsync(job.Id);
        Assert.Equal(JobStatus.Paused, after.Status);
        Assert.Equal((0, null, null, null), (after.Attempts, after.WorkerId, after.HeartbeatAt, after.StartedAt));
        Assert.Empty(await worker.EventsAsync(job.Id));
        Assert.Empty(await worker.CheckpointsAsync(job.Id));
    }

    [Fact]
    public async Task A_delivery_of_a_job_a_live_worker_holds_leaves_it_to_that_worker()
    {
        await using var worker = await WorkerHost.StartAsync(server);
        var file = await worker.UploadFileAsync(TinyBaseModel.Jsonl(12));
        const string liveWorker = "other-host:cpu:4242";
        var started = DateTime.UtcNow;
        var job = await worker.AddJobAsync(file, epochs: 1, j =>
        {
            j.Status = JobStatus.Running;
            j.WorkerId = liveWorker;
            j.HeartbeatAt = started;
            j.StartedAt = started;
            j.Attempts = 1;
        });

        // The other worker keeps beating its heartbeat, as a live one does.
        using var alive = new CancellationTokenSource();
        var heartbeat = Task.Run(async () =>
        {
            while (!alive.IsCancellationRequested)
            {
                await using var db = await worker.CreateDbContextAsync();
                await db.Jobs.Where(j => j.Id == job.Id).ExecuteUpdateAsync(s => s.SetProperty(j => j.HeartbeatAt, DateTime.UtcNow));
                await Task.Delay(200);
            }
        });
        try
        {
            await DeliverAsync(worker, job.Id);
        }
        finally
        {
            await alive.CancelAsync();
            await heartbeat;
        }

        var after = await worker.GetJobAsync(job.Id);
        Assert.Equal((JobStatus.Running, liveWorker, 1), (after.Status, after.WorkerId, after.Attempts));
        Assert.Equal(started, after.StartedAt!.Value, TimeSpan.FromMilliseconds(1));
        Assert.Empty(await worker.EventsAsync(job.Id));
        Assert.Empty(await worker.CheckpointsAsync(job.Id));
    }

    /// <summary>Enqueues the job again and waits until Hangfire reports that delivery finished.</summary>
    private static async Task DeliverAsync(WorkerHost worker, string jobId)
    {
        var hangfireId = worker.Enqueue(jobId);
        var monitor = worker.Services.GetRequiredService<JobStorage>().GetMonitoringApi();
        var state = await Eventually.UntilAsync(() => Task.FromResult(monitor.JobDetails(hangfireId)?.History.FirstOrDefault()?.StateName),
            s => s == SucceededState.StateName || s == FailedState.StateName, TimeSpan.FromSeconds(120), TimeSpan.FromMilliseconds(100));
        Assert.Equal(SucceededState.StateName, state);
    }
}
