using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FineTuneService.Worker.Jobs;

/// <summary>
/// A worker's hold on a claimed run without checkpoints (a stand-alone safety evaluation, a hardening run) while it
/// runs: its heartbeat is beaten every <see cref="WorkerOptions.HeartbeatInterval"/>, so crash recovery hands the run of
/// a dead worker to another one after <see cref="WorkerOptions.StaleTimeout"/> (<see cref="StaleJobMonitor"/>). When
/// that happened to a worker that was only slow, <see cref="Lost"/> fires and the run stops without writing.
/// </summary>
public sealed class RunLease : IAsyncDisposable
{
    private readonly CancellationTokenSource _lost = new();
    private readonly Heartbeat _heartbeat;

    /// <param name="beat">Stamps the heartbeat if this worker still holds the run: true, else false.</param>
    internal RunLease(string description, string workerId, TimeSpan interval, TimeProvider clock, ILogger logger,
        Func<DateTime, CancellationToken, Task<bool>> beat)
    {
        _heartbeat = new Heartbeat(interval, clock, async cancellationToken =>
        {
            if (await beat(clock.GetUtcNow().UtcDateTime, cancellationToken)) return true;
            logger.LogWarning("{Run}: worker {WorkerId} no longer holds it", description, workerId);
            await _lost.CancelAsync();
            return false;
        }, logger, description);
    }

    /// <summary>Cancelled when another worker has taken the run over.</summary>
    public CancellationToken Lost => _lost.Token;

    public async ValueTask DisposeAsync()
    {
        await _heartbeat.DisposeAsync();
        _lost.Dispose();
    }
}

/// <summary>Creates leases for claimed safety evaluations and hardening runs.</summary>
public sealed class RunLeases(
    IDbContextFactory<FineTuneDbContext> contexts,
    IOptions<WorkerOptions> options,
    TimeProvider clock,
    ILogger<RunLease> logger)
{
    public RunLease StartEvaluation(string evaluationId, string workerId) =>
        new($"Safety evaluation {evaluationId}", workerId, options.Value.HeartbeatInterval, clock, logger, async (now, cancellationToken) =>
        {
            await using var db = await contexts.CreateDbContextAsync(cancellationToken);
            return await db.SafetyEvaluations
                .Where(e => e.Id == evaluationId && e.WorkerId == workerId && e.Status == SafetyEvaluationStatus.Running)
                .ExecuteUpdateAsync(set => set.SetProperty(e => e.HeartbeatAt, now), cancellationToken) == 1;
        });

    public RunLease StartHardening(string runId, string workerId) =>
        new($"Hardening run {runId}", workerId, options.Value.HeartbeatInterval, clock, logger, async (now, cancellationToken) =>
        {
            await using var db = await contexts.CreateDbContextAsync(cancellationToken);
            return await db.HardeningRuns
                .Where(r => r.Id == runId && r.WorkerId == workerId && r.Status == HardeningRunStatus.Running)
                .ExecuteUpdateAsync(set => set.SetProperty(r => r.HeartbeatAt, now), cancellationToken) == 1;
        });
}
