using System.Text.Json.Nodes;
using FineTuneService.Contracts.Safety;
using FineTuneService.Contracts.Judges;

namespace FineTuneService.Core.Domain;

public enum SafetyEvaluationStatus { Queued, Running, Succeeded, Failed }

/// <summary>
/// A stand-alone safety evaluation requested through <c>POST /v1/safety/evaluations</c>: a model (base or the
/// tenant's fine-tuned one) scored on a prompt file or the shipped sets.
/// </summary>
public sealed class SafetyEvaluation : ICreatedRow
{
    /// <summary>"safeval-…", see <see cref="Ids.Evaluation"/>.</summary>
    public required string Id { get; init; }
    /// <summary>The tenant that asked, or null for an admin's evaluation that belongs to no tenant.</summary>
    public string? TenantId { get; init; }
    /// <summary>Base model id or fine-tuned model name.</summary>
    public required string Model { get; init; }
    /// <summary>Optional uploaded prompt file; null means the shipped prompt sets.</summary>
    public string? PromptFileId { get; init; }
    public string Judge { get; init; } = SafetyJudges.Classifier.Name;
    /// <summary>The validated request settings (metrics, prompt count, generation length, samples).</summary>
    public SafetyEvaluationSettings Settings { get; init; } = new();
    public SafetyEvaluationStatus Status { get; set; } = SafetyEvaluationStatus.Queued;
    /// <summary>The evaluation report (snake_case JSON), once succeeded.</summary>
    public JsonObject? Report { get; set; }
    /// <summary>{code, message} when failed.</summary>
    public JsonObject? Error { get; set; }
    public DateTime CreatedAt { get; init; }
    public DateTime? StartedAt { get; set; }
    public DateTime? FinishedAt { get; set; }
    /// <summary>Which worker (host/device/process) runs it, and when it last reported; a stale heartbeat means it died.</summary>
    public string? WorkerId { get; set; }
    public DateTime? HeartbeatAt { get; set; }
    /// <summary>How many times a worker has started it.</summary>
    public int Attempts { get; set; }
}
