using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Jobs;
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
    /// Claims <paramref name="jobId"/> for <paramref name="workerId"/> (<see cref="JobStateMachine.Claim"/>): status
    /// running, heartbeat now, Attempts + 1. Returns the claimed job, or null when there is nothing to do (terminal,
    /// paused, held by a live worker, gone, or cancelled or paused before it started, which is recorded here).
    /// </summary>
    /// <param name="deviceKind">The kind of the worker's device, recorded on the job (<see cref="FineTuningJob.DeviceKind"/>).</param>
    public async Task<FineTuningJob?> TryClaimAsync(string jobId, string workerId, string deviceKind, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        // The retrying execution strategy replays the whole unit, so the transaction must live inside it.
        return await db.Database.CreateExecutionStrategy().ExecuteAsync(async () =>
        {
            db.ChangeTracker.Clear();
            await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
            var now = clock.GetUtcNow().UtcDateTime;
            var staleBefore = now - options.Value.StaleTimeout;

            var wasQueued = await db.Jobs.AnyAsync(j => j.Id == jobId && j.Status == JobStatus.Queued, cancellationToken);
            if (await StateMachine.ApplyAsync(db, jobId, JobStateMachine.Claim(workerId, deviceKind, now, staleBefore, options.Value.MaxAttempts), now, cancellationToken))
            {
                var claimed = await db.Jobs.AsNoTracking().SingleAsync(j => j.Id == jobId, cancellationToken);
                if (wasQueued)
                {
                    db.JobEvents.Add(JobEvents.Message(jobId, $"Picked from the queue by worker {workerId}"));
                    db.JobEvents.AddRange(await JobQueue.MovedUpEventsAsync(db, claimed, cancellationToken));
                    await db.SaveChangesAsync(cancellationToken);
                }
                await transaction.CommitAsync(cancellationToken);
                return claimed;
            }

            foreach (var request in new[] { JobStateMachine.CancelUnstarted(now, staleBefore), JobStateMachine.PauseUnstarted(staleBefore) })
            {
                if (!await StateMachine.ApplyAsync(db, jobId, request, now, cancellationToken)) continue;
                await db.SaveChangesAsync(cancellationToken);
                await transaction.CommitAsync(cancellationToken);
                logger.LogInformation("Job {JobId}: {Transition} on delivery", jobId, request.Name);
                return null;
            }

            var job = await db.Jobs.AsNoTracking().SingleOrDefaultAsync(j => j.Id == jobId, cancellationToken);
            logger.LogInformation("Job {JobId} not claimed: {Reason}", jobId, job switch
            {
                null => "no such job",
                { IsTerminal: true } => $"already {job.Status}",
                { Status: JobStatus.Paused } => "paused",
                { WorkerId: not null } when job.HeartbeatAt >= staleBefore => $"held by live worker {job.WorkerId}",
                _ => $"status {job.Status}, control {job.Control}, attempts {job.Attempts}",
            });
            return null;
        });
    }
}
