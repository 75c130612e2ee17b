using System.Text.Json.Nodes;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Jobs;
using FineTuneService.Ml.Training;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace FineTuneService.Worker.Jobs;

/// <summary>
/// A worker's hold on a claimed job while it trains. A background loop beats the heartbeat every interval and, in
/// the same round trip, inserts the events the training thread buffered, so persistence costs one batch per
/// interval rather than one write per step. Every write is conditional on this worker still holding the job: when
/// crash recovery has handed the job to someone else, <see cref="Lost"/> fires and nothing more is written.
/// </summary>
public sealed class JobLease : IAsyncDisposable
{
    private readonly IDbContextFactory<FineTuneDbContext> _contexts;
    private readonly TimeProvider _clock;
    private readonly ILogger _logger;
    private readonly List<JobEvent> _pending = [];
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly CancellationTokenSource _lost = new();
    private readonly Heartbeat _heartbeat;
    private DateTime? _estimatedFinish;
    private volatile bool _released;

    internal JobLease(string jobId, string workerId, TimeSpan interval, IDbContextFactory<FineTuneDbContext> contexts,
        TimeProvider clock, ILogger logger)
    {
        JobId = jobId;
        WorkerId = workerId;
        _contexts = contexts;
        _clock = clock;
        _logger = logger;
        _heartbeat = new Heartbeat(interval, clock, FlushAsync, logger, $"Job {jobId}");
    }

    public string JobId { get; }
    public string WorkerId { get; }

    /// <summary>Cancelled when another worker has taken the job over (this worker was presumed dead).</summary>
    public CancellationToken Lost => _lost.Token;

    public DateTime Now => _clock.GetUtcNow().UtcDateTime;

    /// <summary>Buffers an event; it is written with the next heartbeat or flush. Safe from any thread.</summary>
    public void Post(JobEvent jobEvent)
    {
        lock (_pending) _pending.Add(jobEvent);
    }

    public void Post(string message, EventLevel level = EventLevel.Info) => Post(JobEvents.Message(JobId, message, level, Now));

    /// <summary>Buffers a metrics event and remembers its ETA for the job's estimated_finish.</summary>
    public void Report(TrainingProgress progress)
    {
        var estimatedFinish = Now + progress.Remaining;
        _estimatedFinish = estimatedFinish;
        var preference = progress.RewardMargin is { } margin
            ? $", reward margin={margin:0.0000}, reward accuracy={progress.RewardAccuracy:0.00}"
            : "";
        var data = new JsonObject
        {
            ["step"] = progress.Step,
            ["total_steps"] = progress.TotalSteps,
            ["train_loss"] = Math.Round(progress.TrainLoss, 6),
            ["train_mean_token_accuracy"] = double.IsFinite(progress.TrainTokenAccuracy) ? Math.Round(progress.TrainTokenAccuracy, 6) : null,
            ["epoch"] = progress.Epoch,
            ["learning_rate"] = progress.LearningRate,
            ["tokens_per_second"] = Math.Round(progress.TokensPerSecond, 1),
            ["trained_tokens"] = progress.TokensSeen,
            ["estimated_finish"] = new DateTimeOffset(estimatedFinish).ToUnixTimeSeconds(),
        };
        if (progress.RewardMargin is { } rewardMargin)
        {
            data["reward_margin"] = Math.Round(rewardMargin, 6);
            data["reward_accuracy"] = progress.RewardAccuracy is { } accuracy ? Math.Round(accuracy, 6) : null;
        }
        Post(JobEvents.Metrics(JobId, $"Step {progress.Step}/{progress.TotalSteps}: training loss={progress.TrainLoss:0.0000}{preference}", data, Now));
    }

    /// <summary>The SQL comment on <see cref="ReadControl"/>'s query (pg_stat_statements, logs, test interceptors).</summary>
    public const string ControlReadTag = "job control read";

    /// <summary>Reads the job's control flag: one primary-key lookup, cheap enough to do between every two steps.</summary>
    public JobControl ReadControl()
    {
        using var db = _contexts.CreateDbContext();
        return db.Jobs.AsNoTracking().TagWith(ControlReadTag).Where(j => j.Id == JobId).Select(j => j.Control).Single();
    }

    /// <summary>Writes buffered events and beats the heartbeat now.</summary>
    public Task<bool> FlushAsync(CancellationToken cancellationToken) => WriteAsync(null, null, cancellationToken);

    /// <summary>
    /// Writes buffered events and then, in the same transaction and only while this worker holds the job, applies
    /// <paramref name="update"/> to the tracked job row (checkpoint rows, resolved settings, …; never its status).
    /// Returns false when the lease was lost, in which case nothing was written.
    /// </summary>
    public Task<bool> WriteAsync(Action<FineTuneDbContext, FineTuningJob> update, CancellationToken cancellationToken) =>
        WriteAsync(null, update, cancellationToken);

    /// <summary>
    /// Ends this worker's hold with <paramref name="transition"/> (one of <see cref="JobStateMachine"/>'s transitions
    /// from running), after the buffered events and in the same transaction; <paramref name="record"/> then adds what
    /// goes with it (safety reports, scores) to the tracked row. No heartbeat or write follows.
    /// </summary>
    public Task<bool> EndAsync(Transition<FineTuningJob> transition, Action<FineTuneDbContext, FineTuningJob>? record,
        CancellationToken cancellationToken) => WriteAsync(transition, record, cancellationToken);

    private async Task<bool> WriteAsync(Transition<FineTuningJob>? transition, Action<FineTuneDbContext, FineTuningJob>? update,
        CancellationToken cancellationToken)
    {
        if (_lost.IsCancellationRequested) return false;
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            if (_released) return true; // handed back or finished: no more heartbeats
            List<JobEvent> events;
            lock (_pending) events = [.. _pending];
            var estimatedFinish = _estimatedFinish;

            await using var db = await _contexts.CreateDbContextAsync(cancellationToken);
            var held = await db.Database.CreateExecutionStrategy().ExecuteAsync(async () =>
            {
                db.ChangeTracker.Clear();
                await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
                var now = Now;
                var beat = await db.Jobs.Where(j => j.Id == JobId && j.WorkerId == WorkerId)
                    .ExecuteUpdateAsync(set => set
                        .SetProperty(j => j.HeartbeatAt, now)
                        .SetProperty(j => j.EstimatedFinish, j => estimatedFinish ?? j.EstimatedFinish), cancellationToken);
                if (beat == 0) return false;

                await JobEventBatch.InsertAsync(db, events, cancellationToken);
                if (transition is not null && !await StateMachine.ApplyAsync(db, JobId, transition, now, cancellationToken))
                    throw new InvalidOperationException($"Job {JobId}: {transition.Name} does not apply to the job this worker holds.");
                if (update is not null) update(db, await db.Jobs.SingleAsync(j => j.Id == JobId, cancellationToken));
                await db.SaveChangesAsync(cancellationToken);
                await transaction.CommitAsync(cancellationToken);
                return true;
            });

            // Only now are the events committed; on an exception they stay buffered for the next attempt.
            lock (_pending) _pending.RemoveRange(0, events.Count);
            _released = held && transition is not null;
            if (!held)
            {
                _logger.LogWarning("Job {JobId}: worker {WorkerId} no longer holds it; stopping without further writes", JobId, WorkerId);
                await _lost.CancelAsync();
            }
            return held;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _heartbeat.DisposeAsync();
        _lost.Dispose();
        _writeLock.Dispose();
    }
}

/// <summary>Creates leases for claimed jobs.</summary>
public sealed class JobLeases(
    IDbContextFactory<FineTuneDbContext> contexts,
    Microsoft.Extensions.Options.IOptions<WorkerOptions> options,
    TimeProvider clock,
    ILogger<JobLease> logger)
{
    public JobLease Start(string jobId, string workerId) =>
        new(jobId, workerId, options.Value.HeartbeatInterval, contexts, clock, logger);
}
