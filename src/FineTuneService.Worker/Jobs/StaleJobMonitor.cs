using System.Text.Json.Nodes;
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

        // Stand-alone safety evaluations and hardening runs are held the same way; they have no checkpoints, so a
        // requeued one starts over.
        await RecoverStartingOverAsync(db, db.SafetyEvaluations.AsNoTracking()
                .Where(e => e.Status == SafetyEvaluationStatus.Running && (e.HeartbeatAt == null || e.HeartbeatAt < staleBefore))
                .Select(e => new Orphan(e.Id, e.WorkerId, e.Attempts, e.HeartbeatAt)),
            "evaluation", "Safety evaluation", EvaluationStateMachine.FailOrphan, EvaluationStateMachine.RequeueOrphan, now, handled, cancellationToken);
        await RecoverStartingOverAsync(db, db.HardeningRuns.AsNoTracking()
                .Where(r => r.Status == HardeningRunStatus.Running && (r.HeartbeatAt == null || r.HeartbeatAt < staleBefore))
                .Select(r => new Orphan(r.Id, r.WorkerId, r.Attempts, r.HeartbeatAt)),
            "hardening", "Hardening run", HardeningStateMachine.FailOrphan, HardeningStateMachine.RequeueOrphan, now, handled, cancellationToken);
        return handled;
    }

    /// <summary>A running row whose worker is presumed dead.</summary>
    private sealed record Orphan(string Id, string? WorkerId, int Attempts, DateTime? HeartbeatAt);

    /// <summary>Fails each orphan past the attempt limit with <c>worker_lost</c> and re-queues the others to start over.</summary>
    /// <param name="what">The row in the failure message: "The worker running this {what} …".</param>
    /// <param name="logName">The row in the log line, e.g. "Hardening run".</param>
    private async Task RecoverStartingOverAsync<T>(FineTuneDbContext db, IQueryable<Orphan> orphans, string what, string logName,
        Func<string?, DateTime?, JsonObject, DateTime, Transition<T>> failOrphan, Func<string?, DateTime?, Transition<T>> requeueOrphan,
        DateTime now, List<string> handled, CancellationToken cancellationToken) where T : class, ICreatedRow
    {
        foreach (var orphan in await orphans.ToListAsync(cancellationToken))
        {
            var transition = orphan.Attempts >= options.Value.MaxAttempts
                ? failOrphan(orphan.WorkerId, orphan.HeartbeatAt, JobFailureException.Error("worker_lost",
                    $"The worker running this {what} ({orphan.WorkerId}) stopped responding, and it has been started " +
                    $"{orphan.Attempts} times (limit {options.Value.MaxAttempts}); giving up.", null), now)
                : requeueOrphan(orphan.WorkerId, orphan.HeartbeatAt);
            if (!await states.TryAsync(db, orphan.Id, transition, cancellationToken)) continue;
            logger.LogWarning("{Row} {Id}: {Transition}, worker {WorkerId} lost after {Attempts} attempts",
                logName, orphan.Id, transition.Name, orphan.WorkerId, orphan.Attempts);
            handled.Add(orphan.Id);
        }
    }
}
