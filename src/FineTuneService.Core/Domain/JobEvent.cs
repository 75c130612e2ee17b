using System.Text.Json.Nodes;

namespace FineTuneService.Core.Domain;

public enum EventLevel { Info, Warn, Error }

/// <summary>A fine-tuning event (OpenAI "fine_tuning.job.event"). Metrics events carry step, loss, tokens/s and ETA in <see cref="Data"/>.</summary>
public sealed class JobEvent
{
    public required string Id { get; init; }
    public required string JobId { get; init; }
    public EventLevel Level { get; init; } = EventLevel.Info;
    public required string Message { get; init; }
    /// <summary>"message" or "metrics", as in the OpenAI API.</summary>
    public string Type { get; init; } = "message";
    public JsonObject? Data { get; init; }
    public DateTime CreatedAt { get; init; }
    /// <summary>Monotonic order within a job; timestamps can tie.</summary>
    public long Sequence { get; init; }
}
