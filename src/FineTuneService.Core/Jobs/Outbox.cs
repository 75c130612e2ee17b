using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FineTuneService.Core.Jobs;

/// <summary>Outbox settings: section "Outbox".</summary>
public sealed record OutboxOptions
{
    public const string Section = "Outbox";

    /// <summary>How often each process looks for messages a crashed sender left behind.</summary>
    public TimeSpan SweepInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// A message older than this is presumed lost by its sender (which normally sends and deletes it within
    /// milliseconds of its commit) and is sent by a sweeper; a sweeper that tried waits this long before trying again.
    /// </summary>
    public TimeSpan RetryAfter { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>
/// Makes a row's change and its Hangfire enqueue atomic without a distributed transaction: the change and an
/// <see cref="OutboxMessage"/> commit together, the sender enqueues and deletes the message after the commit, and
/// a sweeper in every process re-sends messages a dead sender left behind. Delivery is at least once; every
/// Hangfire job here is idempotent, so a message sent twice (the sender died after its enqueue) does no harm.
/// </summary>
public sealed class Outbox(
    IJobScheduler scheduler,
    IDbContextFactory<FineTuneDbContext> contexts,
    TimeProvider clock,
    IOptions<OutboxOptions> options,
    ILogger<Outbox> logger)
{
    /// <summary>Adds a message to <paramref name="db"/>; the caller's SaveChanges writes it with the change it belongs to.</summary>
    public static OutboxMessage Add(FineTuneDbContext db, Dispatch dispatch, string targetId)
    {
        var message = new OutboxMessage { Dispatch = dispatch, TargetId = targetId };
        db.Outbox.Add(message);
        return message;
    }

    /// <summary>
    /// After <paramref name="db"/>'s transaction committed: sends every outbox message it wrote. Not cancellable: the
    /// change is committed, so its work should go out even when the request that made it is gone.
    /// </summary>
    public async Task SendCommittedAsync(FineTuneDbContext db)
    {
        foreach (var entry in db.ChangeTracker.Entries<OutboxMessage>().ToList())
        {
            entry.State = EntityState.Detached;
            await SendAsync(entry.Entity, CancellationToken.None);
        }
    }

    /// <summary>
    /// After the commit: enqueues the message's work and deletes the message. A failure is only logged: the change is
    /// committed, and the sweeper sends the message later.
    /// </summary>
    public async Task SendAsync(OutboxMessage message, CancellationToken cancellationToken)
    {
        try
        {
            var hangfireId = Enqueue(message);
            logger.LogInformation("{Target} sent to {Dispatch} as Hangfire job {HangfireId}", message.TargetId, message.Dispatch, hangfireId);
            await using var db = await contexts.CreateDbContextAsync(cancellationToken);
            await db.Outbox.Where(m => m.Id == message.Id).ExecuteDeleteAsync(cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            logger.LogWarning(e, "{Target} not yet sent to {Dispatch}; the outbox sweeper sends it", message.TargetId, message.Dispatch);
        }
    }

    /// <summary>One sweep: sends every message older than <see cref="OutboxOptions.RetryAfter"/>; returns how many it sent.</summary>
    public async Task<int> SweepAsync(CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        var due = now - options.Value.RetryAfter;
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var waiting = await db.Outbox.AsNoTracking()
            .Where(m => m.CreatedAt < due && (m.AttemptedAt == null || m.AttemptedAt < due))
            .OrderBy(m => m.Id).Take(100)
            .ToListAsync(cancellationToken);
        var sent = 0;
        foreach (var message in waiting)
        {
            // Another process's sweeper may have taken it since the read: the stamp decides who sends.
            var mine = await db.Outbox.Where(m => m.Id == message.Id && m.AttemptedAt == message.AttemptedAt)
                .ExecuteUpdateAsync(set => set.SetProperty(m => m.AttemptedAt, now), cancellationToken) == 1;
            if (!mine) continue;
            logger.LogWarning("{Target} was committed for {Dispatch} at {CreatedAt:O} but never sent; sending it now",
                message.TargetId, message.Dispatch, message.CreatedAt);
            await SendAsync(message, cancellationToken);
            sent++;
        }
        return sent;
    }

    private string Enqueue(OutboxMessage message) => message.Dispatch switch
    {
        Dispatch.Training => scheduler.EnqueueTraining(message.TargetId),
        Dispatch.FileValidation => scheduler.EnqueueFileValidation(message.TargetId),
        Dispatch.FileScreening => scheduler.EnqueueFileScreening(message.TargetId),
        Dispatch.SafetyEvaluation => scheduler.EnqueueSafetyEvaluation(message.TargetId),
        Dispatch.Hardening => scheduler.EnqueueHardening(message.TargetId),
        _ => throw new ArgumentOutOfRangeException(nameof(message), message.Dispatch, "Nothing to send."),
    };
}

/// <summary>Runs <see cref="Outbox.SweepAsync"/> every <see cref="OutboxOptions.SweepInterval"/> in each host.</summary>
internal sealed class OutboxSweeper(Outbox outbox, IOptions<OutboxOptions> options, TimeProvider clock, ILogger<OutboxSweeper> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.SweepInterval, clock);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    await outbox.SweepAsync(stoppingToken);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    logger.LogWarning(e, "Outbox sweep failed; retrying at the next interval");
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
