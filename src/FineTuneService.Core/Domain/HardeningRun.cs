using System.Text.Json.Nodes;

namespace FineTuneService.Core.Domain;

public enum HardeningRunStatus { Queued, Running, Succeeded, Failed }

/// <summary>
/// An admin's hardening of a base model (<c>POST /v1/admin/models/{base}/harden</c>): a worker runs the method on a
/// device, stores the result as the base model <see cref="HardenedModel"/> with its lineage and scores it once.
/// </summary>
public sealed class HardeningRun : ICreatedRow
{
    /// <summary>"hardrun-…", see <see cref="Ids.HardeningRun"/>.</summary>
    public required string Id { get; init; }
    /// <summary>The base model hardened.</summary>
    public required string BaseModel { get; init; }
    /// <summary>Registered method name (<c>HardeningMethods</c>), e.g. "booster".</summary>
    public required string Method { get; init; }
    /// <summary>The method's validated parameters, every field (snake_case), as the new model's lineage shows them.</summary>
    public required JsonObject Params { get; init; }
    public required string Suffix { get; init; }
    /// <summary>The base model the run produces, <c>{base}-{suffix}</c>.</summary>
    public required string HardenedModel { get; init; }
    public long Seed { get; init; } = 1;
    public HardeningRunStatus Status { get; set; } = HardeningRunStatus.Queued;
    /// <summary>Once succeeded: the method's report (losses), the stored artifact and the new model's base scores.</summary>
    public JsonObject? Report { get; set; }
    /// <summary>{code, message} when failed.</summary>
    public JsonObject? Error { get; set; }
    public DateTime CreatedAt { get; init; }
    public DateTime? StartedAt { get; set; }
    public DateTime? FinishedAt { get; set; }
    /// <summary>Which worker runs it, and when it last reported; a stale heartbeat means it died.</summary>
    public string? WorkerId { get; set; }
    public DateTime? HeartbeatAt { get; set; }
    /// <summary>How many times a worker has started it.</summary>
    public int Attempts { get; set; }
}

/// <summary>A progress message of a hardening run (start, every few steps, registration, scores, failure).</summary>
public sealed class HardeningRunEvent
{
    public required string Id { get; init; }
    public required string RunId { get; init; }
    public EventLevel Level { get; init; } = EventLevel.Info;
    public required string Message { get; init; }
    /// <summary>Step, steps, alignment loss and harmful-loss drop on a step's event.</summary>
    public JsonObject? Data { get; init; }
    public DateTime CreatedAt { get; init; }
    /// <summary>Monotonic order within a run; timestamps can tie.</summary>
    public long Sequence { get; init; }
}
