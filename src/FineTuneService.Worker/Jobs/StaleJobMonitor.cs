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
/// used, after which it fails with <c>worker_lost</c>. Stand-alone safety evaluations are recovered the same way
/// (they start over). Every worker process runs this; conditional updates make concurrent monitors harmless, and
/// claims make duplicate deliveries harmless.
/// </summary>
public sealed class StaleJobMonitor(
    IDbContextFactory<FineTuneDbContext> contexts,
    StateMachine states,
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

    /// <summary>One recovery pass; returns the ids of the jobs and evaluations it re-queued or failed.</summary>
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
            Transition<FineTuningJob> transition;
            if (job.Attempts >= options.Value.MaxAttempts)
            {
                var message = $"The worker running this job ({job.WorkerId}) stopped responding, and the job has been " +
                              $"started {job.Attempts} times (limit {options.Value.MaxAttempts}); giving up.";
                transition = JobStateMachine.FailOrphan(job.WorkerId, job.HeartbeatAt, JobFailureException.Error("worker_lost", message, null), now);
            }
            else
            {
                var lastCheckpoint = await db.JobCheckpoints.Where(c => c.JobId == job.Id)
                    .MaxAsync(c => (int?)c.StepNumber, cancellationToken);
                transition = JobStateMachine.RequeueOrphan(job.WorkerId, job.HeartbeatAt,
                    $"The worker running this job ({job.WorkerId}) stopped responding; re-queued to resume from " +
                    (lastCheckpoint is { } step ? $"the checkpoint at step {step}" : "the start"));
            }
            if (!await states.TryAsync(db, job.Id, transition, cancellationToken)) continue;
            logger.LogWarning("Job {JobId}: {Transition}, worker {WorkerId} lost after {Attempts} attempts",
                job.Id, transition.Name, job.WorkerId, job.Attempts);
            handled.Add(job.Id);
        }

        // Stand-alone safety evaluations are held the same way; they have no checkpoints, so a requeued one starts over.
        var orphanedEvaluations = await db.SafetyEvaluations.AsNoTracking()
            .Where(e => e.Status == SafetyEvaluationStatus.Running && (e.HeartbeatAt == null || e.HeartbeatAt < staleBefore))
            .Select(e => new { e.Id, e.WorkerId, e.Attempts, e.HeartbeatAt })
            .ToListAsync(cancellationToken);
        foreach (var evaluation in orphanedEvaluations)
        {
            var transition = evaluation.Attempts >= options.Value.MaxAttempts
                ? EvaluationStateMachine.FailOrphan(evaluation.WorkerId, evaluation.HeartbeatAt, JobFailureException.Error("worker_lost",
                    $"The worker running this evaluation ({evaluation.WorkerId}) stopped responding, and it has been started " +
                    $"{evaluation.Attempts} times (limit {options.Value.MaxAttempts}); giving up.", null), now)
                : EvaluationStateMachine.RequeueOrphan(evaluation.WorkerId, evaluation.HeartbeatAt);
            if (!await states.TryAsync(db, evaluation.Id, transition, cancellationToken)) continue;
            logger.LogWarning("Safety evaluation {EvaluationId}: {Transition}, worker {WorkerId} lost after {Attempts} attempts",
                evaluation.Id, transition.Name, evaluation.WorkerId, evaluation.Attempts);
            handled.Add(evaluation.Id);
        }

        // Hardening runs likewise: a requeued one starts over.
        var orphanedRuns = await db.HardeningRuns.AsNoTracking()
            .Where(r => r.Status == HardeningRunStatus.Running && (r.HeartbeatAt == null || r.HeartbeatAt < staleBefore))
            .Select(r => new { r.Id, r.WorkerId, r.Attempts, r.HeartbeatAt })
            .ToListAsync(cancellationToken);
        foreach (var run in orphanedRuns)
        {
            var transition = run.Attempts >= options.Value.MaxAttempts
                ? HardeningStateMachine.FailOrphan(run.WorkerId, run.HeartbeatAt, JobFailureException.Error("worker_lost",
                    $"The worker running this hardening ({run.WorkerId}) stopped responding, and it has been started " +
                    $"{run.Attempts} times (limit {options.Value.MaxAttempts}); giving up.", null), now)
                : HardeningStateMachine.RequeueOrphan(run.WorkerId, run.HeartbeatAt);
            if (!await states.TryAsync(db, run.Id, transition, cancellationToken)) continue;
            logger.LogWarning("Hardening run {RunId}: {Transition}, worker {WorkerId} lost after {Attempts} attempts",
                run.Id, transition.Name, run.WorkerId, run.Attempts);
            handled.Add(run.Id);
        }
        return handled;
    }
}
