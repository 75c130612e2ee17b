using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FineTuneService.Worker.Jobs;

/// <summary>
/// Decides whether a delivered job should run here. Hangfire delivers at least once and crash recovery may enqueue a
/// job again, so every delivery goes through one conditional update: only one worker can hold a job at a time.
/// </summary>
public sealed class JobClaims(
    IDbContextFactory<FineTuneDbContext> contexts,
    IOptions<WorkerOptions> options,
    TimeProvider clock,
    ILogger<JobClaims> logger)
{
    /// <summary>
    /// Claims <paramref name="jobId"/> for <paramref name="workerId"/>: status running, heartbeat now, Attempts + 1.
    /// Returns the claimed job, or null when there is nothing to do (terminal, paused, held by a live worker, gone,
    /// or cancelled before it started, which is recorded here).
    /// </summary>
    public async Task<FineTuningJob?> TryClaimAsync(string jobId, string workerId, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        // The retrying execution strategy replays the whole unit, so the transaction must live inside it.
        return await db.Database.CreateExecutionStrategy().ExecuteAsync(async () =>
        {
            db.ChangeTracker.Clear();
            await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
            var now = clock.GetUtcNow().UtcDateTime;
            var staleBefore = now - options.Value.StaleTimeout;

            var claimed = await db.Jobs
                .Where(j => j.Id == jobId
                            && (j.Status == JobStatus.ValidatingFiles || j.Status == JobStatus.Queued || j.Status == JobStatus.Running)
                            && !j.Paused
                            && j.Control == JobControl.None
                            && j.Attempts < options.Value.MaxAttempts
                            && (j.WorkerId == null || j.HeartbeatAt == null || j.HeartbeatAt < staleBefore))
                .ExecuteUpdateAsync(set => set
                    .SetProperty(j => j.Status, JobStatus.Running)
                    .SetProperty(j => j.WorkerId, workerId)
                    .SetProperty(j => j.HeartbeatAt, now)
                    .SetProperty(j => j.Attempts, j => j.Attempts + 1)
                    .SetProperty(j => j.StartedAt, j => j.StartedAt ?? now), cancellationToken);

            var job = await db.Jobs.SingleOrDefaultAsync(j => j.Id == jobId, cancellationToken);
            if (claimed == 1)
            {
                await transaction.CommitAsync(cancellationToken);
                return job;
            }

            if (job is { IsTerminal: false, Control: JobControl.Cancel } && !IsHeldByLiveWorker(job, staleBefore))
            {
                job.Status = JobStatus.Cancelled;
                job.Control = JobControl.None;
                job.Paused = false;
                job.WorkerId = null;
                job.FinishedAt = now;
                db.JobEvents.Add(JobEvents.Message(job.Id, "The job was cancelled before it started", now));
                await db.SaveChangesAsync(cancellationToken);
                await transaction.CommitAsync(cancellationToken);
                logger.LogInformation("Job {JobId} was cancelled before it started", jobId);
                return null;
            }

            if (job is { IsTerminal: false, Control: JobControl.Pause } && !IsHeldByLiveWorker(job, staleBefore))
            {
                // Paused before any worker picked it up: nothing to checkpoint, just park it.
                job.Status = JobStatus.Queued;
                job.Control = JobControl.None;
                job.Paused = true;
                job.WorkerId = null;
                db.JobEvents.Add(JobEvents.Message(job.Id, "The job was paused", now));
                await db.SaveChangesAsync(cancellationToken);
                await transaction.CommitAsync(cancellationToken);
                return null;
            }

            logger.LogInformation("Job {JobId} not claimed: {Reason}", jobId, job switch
            {
                null => "no such job",
                { IsTerminal: true } => $"already {job.Status}",
                { Paused: true } => "paused",
                _ when IsHeldByLiveWorker(job, staleBefore) => $"held by live worker {job.WorkerId}",
                _ => $"status {job.Status}, control {job.Control}",
            });
            return null;
        });
    }

    private static bool IsHeldByLiveWorker(FineTuningJob job, DateTime staleBefore) =>
        job.WorkerId is not null && job.HeartbeatAt >= staleBefore;
}
