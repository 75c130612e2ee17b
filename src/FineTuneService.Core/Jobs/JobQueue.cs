using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using Microsoft.EntityFrameworkCore;

namespace FineTuneService.Core.Jobs;

/// <summary>Where a queued job stands: its place in the pool's queue and when it should start and finish.</summary>
/// <param name="Position">1 for the next job a free worker picks.</param>
/// <param name="EstimatedStart">UTC: when a worker should pick it.</param>
/// <param name="EstimatedFinish">UTC: <see cref="EstimatedStart"/> plus a typical job's run time.</param>
public sealed record QueueStanding(int Position, DateTime EstimatedStart, DateTime EstimatedFinish);

/// <summary>
/// The fine-tuning queue as tenants see it. Queued jobs are picked in creation order (the order they reach the gpu
/// queue; a resumed job keeps its creation place here, though the worker pool takes it after those queued before its
/// resume). Every queued job of every tenant counts, since they share the pool; other tenants' jobs are only counted.
/// <para>
/// The estimate assumes one worker per running job (at least one): each becomes free at its running job's
/// <c>estimated_finish</c> (now when unknown or past), then takes the queued jobs ahead in turn, each for the mean run
/// time of the last <see cref="RecentJobs"/> jobs that finished on the pool (<see cref="FallbackRunTime"/> before any).
/// </para>
/// </summary>
public static class JobQueue
{
    /// <summary>Run time assumed for a queued job before any job has finished on the pool.</summary>
    public static readonly TimeSpan FallbackRunTime = TimeSpan.FromMinutes(10);

    /// <summary>Finished jobs whose run times make the typical run time.</summary>
    public const int RecentJobs = 20;

    /// <summary>The queued jobs in the order workers pick them.</summary>
    public static IQueryable<FineTuningJob> Queued(FineTuneDbContext db) =>
        db.Jobs.AsNoTracking().Where(j => j.Status == JobStatus.Queued).OrderBy(j => j.CreatedAt).ThenBy(j => j.Id);

    /// <summary>The standing of each of <paramref name="jobs"/> that is queued, by job id.</summary>
    public static async Task<IReadOnlyDictionary<string, QueueStanding>> StandingsAsync(FineTuneDbContext db,
        IReadOnlyCollection<FineTuningJob> jobs, DateTime now, CancellationToken cancellationToken)
    {
        var queued = jobs.Where(j => j.Status == JobStatus.Queued).ToList();
        if (queued.Count == 0) return new Dictionary<string, QueueStanding>();

        var last = queued.MaxBy(j => (j.CreatedAt, j.Id))!;
        var order = await Queued(db).Where(j => j.CreatedAt <= last.CreatedAt).Select(j => j.Id).ToListAsync(cancellationToken);
        var (starts, runTime) = await StartTimesAsync(db, order.Count, now, cancellationToken);
        var positions = order.Select((id, index) => (id, index)).ToDictionary(p => p.id, p => p.index);
        return queued.Where(j => positions.ContainsKey(j.Id)).ToDictionary(j => j.Id, j =>
        {
            var index = positions[j.Id];
            return new QueueStanding(index + 1, starts[index], starts[index] + runTime);
        });
    }

    /// <summary>Where a job queued now would stand: behind every queued job.</summary>
    public static async Task<QueueStanding> NextAsync(FineTuneDbContext db, DateTime now, CancellationToken cancellationToken)
    {
        var ahead = await Queued(db).CountAsync(cancellationToken);
        var (starts, runTime) = await StartTimesAsync(db, ahead + 1, now, cancellationToken);
        return new QueueStanding(ahead + 1, starts[^1], starts[^1] + runTime);
    }

    /// <summary>
    /// When each of the first <paramref name="jobs"/> queued jobs should start: each worker is next free at its running
    /// job's estimated finish, and the queue is handed out to the earliest free one in turn.
    /// </summary>
    private static async Task<(DateTime[] Starts, TimeSpan RunTime)> StartTimesAsync(FineTuneDbContext db, int jobs, DateTime now,
        CancellationToken cancellationToken)
    {
        var running = await db.Jobs.AsNoTracking().Where(j => j.Status == JobStatus.Running).Select(j => j.EstimatedFinish).ToListAsync(cancellationToken);
        var runTime = await TypicalRunTimeAsync(db, cancellationToken);
        var free = new PriorityQueue<DateTime, DateTime>();
        foreach (var finish in running.Count > 0 ? running : [null]) free.Enqueue(Later(finish, now), Later(finish, now));
        var starts = new DateTime[jobs];
        for (var i = 0; i < jobs; i++)
        {
            starts[i] = free.Dequeue();
            free.Enqueue(starts[i] + runTime, starts[i] + runTime);
        }
        return (starts, runTime);
    }

    /// <summary>The standing of one job; null unless it is queued.</summary>
    public static async Task<QueueStanding?> StandingAsync(FineTuneDbContext db, FineTuningJob job, DateTime now, CancellationToken cancellationToken) =>
        job.Status != JobStatus.Queued ? null : (await StandingsAsync(db, [job], now, cancellationToken)).GetValueOrDefault(job.Id);

    /// <summary>
    /// Events for the jobs still queued behind <paramref name="picked"/> once it left the queue (a worker took it, or it
    /// was cancelled or paused): each moved up one place. Add them once the job is out of the queue.
    /// </summary>
    /// <param name="reason">Why the job ahead left the queue, as the event says it.</param>
    public static async Task<IReadOnlyList<JobEvent>> MovedUpEventsAsync(FineTuneDbContext db, FineTuningJob picked, CancellationToken cancellationToken,
        string reason = "a worker picked a job ahead of it")
    {
        var queue = await Queued(db).Select(j => new { j.Id, j.CreatedAt }).Take(1000).ToListAsync(cancellationToken);
        return queue
            .Select((j, index) => (j.Id, j.CreatedAt, Position: index + 1))
            .Where(j => j.CreatedAt > picked.CreatedAt || (j.CreatedAt == picked.CreatedAt && string.CompareOrdinal(j.Id, picked.Id) > 0))
            .Select(j => JobEvents.Message(j.Id, $"Moved up to queue position {j.Position}: {reason}",
                data: new System.Text.Json.Nodes.JsonObject { ["queue_position"] = j.Position }))
            .ToList();
    }

    private static async Task<TimeSpan> TypicalRunTimeAsync(FineTuneDbContext db, CancellationToken cancellationToken)
    {
        var recent = await db.Jobs.AsNoTracking()
            .Where(j => j.Status == JobStatus.Succeeded && j.StartedAt != null && j.FinishedAt != null)
            .OrderByDescending(j => j.FinishedAt).Take(RecentJobs)
            .Select(j => new { j.StartedAt, j.FinishedAt }).ToListAsync(cancellationToken);
        return recent.Count == 0
            ? FallbackRunTime
            : TimeSpan.FromTicks((long)recent.Average(j => (j.FinishedAt!.Value - j.StartedAt!.Value).Ticks));
    }

    private static DateTime Later(DateTime? estimate, DateTime now) => estimate is { } at && at > now ? at : now;
}
