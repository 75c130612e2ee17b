using System.Text.Json.Nodes;
using FineTuneService.Core.Domain;

namespace FineTuneService.Core.Jobs;

/// <summary>
/// Builds every job event (OpenAI "fine_tuning.job.event"), whoever writes it: the API, file validation and
/// screening, admin review, the worker's lease and crash recovery.
/// </summary>
public static class JobEvents
{
    /// <param name="at">When it happened; left default, the row takes its save time (see <c>RowTimestamps</c>).</param>
    public static JobEvent Message(string jobId, string message, EventLevel level = EventLevel.Info, DateTime at = default,
        JsonObject? data = null) => new()
    {
        Id = Ids.Event(),
        JobId = jobId,
        Level = level,
        Message = message,
        Data = data,
        CreatedAt = at,
    };

    /// <summary>The <see cref="JobEvent.Type"/> of metrics events.</summary>
    public const string MetricsType = "metrics";

    /// <summary>A metrics event: step, train loss, tokens/s and ETA in its data, as OpenAI's metrics events.</summary>
    public static JobEvent Metrics(string jobId, string message, JsonObject data, DateTime at) => new()
    {
        Id = Ids.Event(),
        JobId = jobId,
        Type = MetricsType,
        Message = message,
        Data = data,
        CreatedAt = at,
    };
}
