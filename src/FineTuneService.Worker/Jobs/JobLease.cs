using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
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
    private readonly CancellationTokenSource _stopBeating = new();
    private readonly Task _heartbeat;
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
        _heartbeat = BeatAsync(interval);
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

    public void Post(string message, EventLevel level = EventLevel.Info) => Post(JobEvents.Message(JobId, message, Now, level));

    /// <summary>Buffers a metrics event and remembers its ETA for the job's estimated_finish.</summary>
    public void Report(TrainingProgress progress)
    {
        _estimatedFinish = progress.EstimatedFinish.UtcDateTime;
        Post(JobEvents.Metrics(JobId, progress, Now));
    }

    /// <summary>Reads the job's control flag: one primary-key lookup, cheap enough to do between every two steps.</summary>
    public JobControl ReadControl()
    {
        using var db = _contexts.CreateDbContext();
        return db.Jobs.AsNoTracking().Where(j => j.Id == JobId).Select(j => j.Control).Single();
    }

    /// <summary>Writes buffered events and beats the heartbeat now.</summary>
    public Task<bool> FlushAsync(CancellationToken cancellationToken) => WriteAsync(null, cancellationToken);

    /// <summary>
    /// Writes buffered events and then, in the same transaction and only while this worker holds the job, applies
    /// <paramref name="update"/> to the tracked job row (checkpoint rows, final status, …). Returns false when the
    /// lease was lost, in which case nothing was written.
    /// </summary>
    public async Task<bool> WriteAsync(Action<FineTuneDbContext, FineTuningJob>? update, CancellationToken cancellationToken)
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
            var releasing = false;
            var held = await db.Database.CreateExecutionStrategy().ExecuteAsync(async () =>
            {
                releasing = false;
                db.ChangeTracker.Clear();
                await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
                var now = Now;
                var beat = await db.Jobs.Where(j => j.Id == JobId && j.WorkerId == WorkerId)
                    .ExecuteUpdateAsync(set => set
                        .SetProperty(j => j.HeartbeatAt, now)
                        .SetProperty(j => j.EstimatedFinish, j => estimatedFinish ?? j.EstimatedFinish), cancellationToken);
                if (beat == 0) return false;

                await JobEventBatch.InsertAsync(db, events, cancellationToken);
                if (update is not null)
                {
                    var job = await db.Jobs.SingleAsync(j => j.Id == JobId, cancellationToken);
                    update(db, job);
                    releasing = job.WorkerId != WorkerId;
                }
                await db.SaveChangesAsync(cancellationToken);
                await transaction.CommitAsync(cancellationToken);
                return true;
            });

            // Only now are the events committed; on an exception they stay buffered for the next attempt.
            lock (_pending) _pending.RemoveRange(0, events.Count);
            _released = held && releasing;
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

    private async Task BeatAsync(TimeSpan interval)
    {
        using var timer = new PeriodicTimer(interval, _clock);
        try
        {
            while (await timer.WaitForNextTickAsync(_stopBeating.Token))
            {
                try
                {
                    if (!await FlushAsync(_stopBeating.Token)) return;
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // The next beat retries; only a heartbeat silent for the whole stale timeout gets the job recovered.
                    _logger.LogWarning(e, "Job {JobId}: heartbeat failed", JobId);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopBeating.CancelAsync();
        await _heartbeat;
        _stopBeating.Dispose();
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
