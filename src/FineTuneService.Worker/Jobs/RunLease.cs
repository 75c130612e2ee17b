using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FineTuneService.Worker.Jobs;

/// <summary>
/// A worker's hold on a claimed stand-alone safety evaluation while it runs: its heartbeat is beaten every
/// <see cref="WorkerOptions.HeartbeatInterval"/>, so crash recovery hands the evaluation of a dead worker to another one
/// after <see cref="WorkerOptions.StaleTimeout"/> (<see cref="StaleJobMonitor"/>). When that happened to a worker that
/// was only slow, <see cref="Lost"/> fires and the run stops without writing.
/// </summary>
public sealed class EvaluationLease : IAsyncDisposable
{
    private readonly CancellationTokenSource _lost = new();
    private readonly Heartbeat _heartbeat;

    internal EvaluationLease(string evaluationId, string workerId, TimeSpan interval, IDbContextFactory<FineTuneDbContext> contexts,
        TimeProvider clock, ILogger logger)
    {
        _heartbeat = new Heartbeat(interval, clock, async cancellationToken =>
        {
            await using var db = await contexts.CreateDbContextAsync(cancellationToken);
            var now = clock.GetUtcNow().UtcDateTime;
            if (await db.SafetyEvaluations
                    .Where(e => e.Id == evaluationId && e.WorkerId == workerId && e.Status == SafetyEvaluationStatus.Running)
                    .ExecuteUpdateAsync(set => set.SetProperty(e => e.HeartbeatAt, now), cancellationToken) == 1) return true;
            logger.LogWarning("Safety evaluation {EvaluationId}: worker {WorkerId} no longer holds it", evaluationId, workerId);
            await _lost.CancelAsync();
            return false;
        }, logger, $"Safety evaluation {evaluationId}");
    }

    /// <summary>Cancelled when another worker has taken the evaluation over.</summary>
    public CancellationToken Lost => _lost.Token;

    public async ValueTask DisposeAsync()
    {
        await _heartbeat.DisposeAsync();
        _lost.Dispose();
    }
}

/// <summary>Creates leases for claimed evaluations.</summary>
public sealed class EvaluationLeases(
    IDbContextFactory<FineTuneDbContext> contexts,
    IOptions<WorkerOptions> options,
    TimeProvider clock,
    ILogger<EvaluationLease> logger)
{
    public EvaluationLease Start(string evaluationId, string workerId) =>
        new(evaluationId, workerId, options.Value.HeartbeatInterval, contexts, clock, logger);
}
