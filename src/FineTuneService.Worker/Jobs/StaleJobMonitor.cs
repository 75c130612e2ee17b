using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Jobs;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FineTuneService.Worker.Jobs;

/// <summary>
/// Crash recovery. A job stays <c>running</c> only while its worker beats the heartbeat; when the heartbeat is older
/// than <see cref="WorkerOptions.StaleTimeout"/> the worker is presumed dead and the job is queued again to resume
/// from its last committed checkpoint on any worker, until <see cref="WorkerOptions.MaxAttempts"/> starts have been
/// used, after which it fails with <c>worker_lost</c>. Every worker process runs this; conditional updates make
/// concurrent monitors harmless, and claims make duplicate deliveries harmless.
/// </summary>
public sealed class StaleJobMonitor(
    IDbContextFactory<FineTuneDbContext> contexts,
    IJobScheduler scheduler,
    IOptions<WorkerOptions> options,
    TimeProvider clock,
    ILogger<StaleJobMonitor> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.RecoveryInterval, clock);
        do
        {
            try
            {
                await RecoverAsync(stoppingToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogWarning(e, "Stale job recovery pass failed; retrying at the next interval");
            }
        } while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    /// <summary>One recovery pass; returns the ids of the jobs it re-queued or failed.</summary>
    public async Task<IReadOnlyList<string>> RecoverAsync(CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        var staleBefore = now - options.Value.StaleTimeout;
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var handled = new List<string>();

        var orphaned = await db.Jobs.AsNoTracking()
            .Where(j => j.Status == JobStatus.Running && (j.HeartbeatAt == null || j.HeartbeatAt < staleBefore))
            .Select(j => new { j.Id, j.WorkerId, j.Attempts, j.HeartbeatAt })
            .ToListAsync(cancellationToken);
        foreach (var job in orphaned)
        {
            var stillOrphaned = db.Jobs.Where(j => j.Id == job.Id && j.Status == JobStatus.Running
                                                   && j.WorkerId == job.WorkerId && j.HeartbeatAt == job.HeartbeatAt);
            if (job.Attempts >= options.Value.MaxAttempts)
            {
                var message = $"The worker running this job ({job.WorkerId}) stopped responding, and the job has been " +
                              $"started {job.Attempts} times (limit {options.Value.MaxAttempts}); giving up.";
                var error = JobFailureException.Error("worker_lost", message, null);
                if (await stillOrphaned.ExecuteUpdateAsync(set => set
                        .SetProperty(j => j.Status, JobStatus.Failed)
                        .SetProperty(j => j.Error, error)
                        .SetProperty(j => j.FinishedAt, now)
                        .SetProperty(j => j.WorkerId, (string?)null)
                        .SetProperty(j => j.Control, JobControl.None)
                        .SetProperty(j => j.EstimatedFinish, (DateTime?)null), cancellationToken) == 0) continue;
                db.JobEvents.Add(JobEvents.Message(job.Id, $"The job failed: {message}", now, EventLevel.Error));
                await db.SaveChangesAsync(cancellationToken);
                logger.LogWarning("Job {JobId} failed: worker {WorkerId} lost after {Attempts} attempts", job.Id, job.WorkerId, job.Attempts);
            }
            else
            {
                var lastCheckpoint = await db.JobCheckpoints.Where(c => c.JobId == job.Id)
                    .MaxAsync(c => (int?)c.StepNumber, cancellationToken);
                // Queued with a heartbeat stamp: if the enqueue below is lost, the next pass sees it waiting and retries.
                if (await stillOrphaned.ExecuteUpdateAsync(set => set
                        .SetProperty(j => j.Status, JobStatus.Queued)
                        .SetProperty(j => j.WorkerId, (string?)null)
                        .SetProperty(j => j.HeartbeatAt, now)
                        .SetProperty(j => j.EstimatedFinish, (DateTime?)null), cancellationToken) == 0) continue;
                db.JobEvents.Add(JobEvents.Message(job.Id,
                    $"The worker running this job ({job.WorkerId}) stopped responding; re-queued to resume from " +
                    (lastCheckpoint is { } step ? $"the checkpoint at step {step}" : "the start"), now, EventLevel.Warn));
                await db.SaveChangesAsync(cancellationToken);
                scheduler.EnqueueTraining(job.Id);
                logger.LogWarning("Job {JobId} re-queued: worker {WorkerId} lost", job.Id, job.WorkerId);
            }
            handled.Add(job.Id);
        }

        // Re-queued here earlier but still not started after a whole stale timeout: the delivery may have been lost
        // (or the queue is busy; a duplicate delivery is a no-op claim then).
        var waiting = await db.Jobs.AsNoTracking()
            .Where(j => j.Status == JobStatus.Queued && !j.Paused && j.WorkerId == null && j.HeartbeatAt < staleBefore)
            .Select(j => new { j.Id, j.HeartbeatAt })
            .ToListAsync(cancellationToken);
        foreach (var job in waiting)
        {
            if (await db.Jobs.Where(j => j.Id == job.Id && j.Status == JobStatus.Queued && j.HeartbeatAt == job.HeartbeatAt)
                    .ExecuteUpdateAsync(set => set.SetProperty(j => j.HeartbeatAt, now), cancellationToken) == 0) continue;
            scheduler.EnqueueTraining(job.Id);
            handled.Add(job.Id);
        }
        return handled;
    }
}
