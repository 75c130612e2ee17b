using System.Diagnostics.Metrics;
using System.Text.Json;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Jobs;
using Hangfire;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace FineTuneService.Core.Telemetry;

/// <summary>The service's meter, shared by both hosts.</summary>
public static class FineTuneMeters
{
    public const string Name = "FineTuneService";
}

/// <summary>
/// Gauges of the whole service, read from PostgreSQL when a collector asks (at most every <see cref="MaxAge"/>):
/// <c>fts.queue.depth</c> (Hangfire jobs waiting, per queue) and <c>fts.jobs</c> (fine-tuning jobs per state).
/// Every host reports the same figures; aggregate with max, not sum.
/// </summary>
public sealed class FleetMetrics
{
    private static readonly TimeSpan MaxAge = TimeSpan.FromSeconds(5);
    private static readonly string[] QueueNames = [Queues.Gpu, Queues.Default, Queues.Screening];

    private readonly JobStorage _storage;
    private readonly IDbContextFactory<FineTuneDbContext> _contexts;
    private readonly TimeProvider _clock;
    private readonly ILogger<FleetMetrics> _logger;
    private readonly Lock _lock = new();
    private (DateTimeOffset At, Measurement<long>[] Queues, Measurement<long>[] Jobs) _snapshot = (DateTimeOffset.MinValue, [], []);

    public FleetMetrics(IMeterFactory meters, JobStorage storage, IDbContextFactory<FineTuneDbContext> contexts, TimeProvider clock,
        ILogger<FleetMetrics> logger)
    {
        _storage = storage;
        _contexts = contexts;
        _clock = clock;
        _logger = logger;
        var meter = meters.Create(FineTuneMeters.Name);
        meter.CreateObservableGauge("fts.queue.depth", () => Snapshot().Queues, "{job}", "Hangfire jobs waiting in each queue.");
        meter.CreateObservableGauge("fts.jobs", () => Snapshot().Jobs, "{job}", "Fine-tuning jobs in each state.");
    }

    /// <summary>The wire name of a status (validating_files, queued, …), as the API shows it.</summary>
    private static string StateName(JobStatus status) => JsonNamingPolicy.SnakeCaseLower.ConvertName(status.ToString());

    private (DateTimeOffset At, Measurement<long>[] Queues, Measurement<long>[] Jobs) Snapshot()
    {
        lock (_lock)
        {
            var now = _clock.GetUtcNow();
            if (now - _snapshot.At < MaxAge) return _snapshot;
            try
            {
                var monitoring = _storage.GetMonitoringApi();
                var queues = QueueNames.Select(q => new Measurement<long>(monitoring.EnqueuedCount(q), new KeyValuePair<string, object?>("queue", q)))
                    .ToArray();
                using var db = _contexts.CreateDbContext();
                var counts = db.Jobs.GroupBy(j => j.Status)
                    .Select(g => new { Status = g.Key, Count = g.LongCount() }).ToList()
                    .ToDictionary(g => StateName(g.Status), g => g.Count);
                var jobs = Enum.GetValues<JobStatus>().Select(StateName)
                    .Select(state => new Measurement<long>(counts.GetValueOrDefault(state), new KeyValuePair<string, object?>("state", state)))
                    .ToArray();
                _snapshot = (now, queues, jobs);
            }
            catch (Exception e)
            {
                // A scrape must not fail because the database blinked; the last figures stand until the next try.
                _logger.LogWarning(e, "Could not read queue depth and job counts for the metrics");
            }
            return _snapshot;
        }
    }
}
