using System.Text.Json.Nodes;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Safety;

namespace FineTuneService.Api.Contracts;

/// <summary>Body of <c>POST /v1/safety/evaluations</c>.</summary>
public sealed record CreateSafetyEvaluationRequest
{
    /// <summary>Base model id, or a fine-tuned model the caller may see (the admin: any).</summary>
    public string? Model { get; init; }

    /// <summary>
    /// Optional id of an uploaded JSONL prompt set (purpose "evals" or "fine-tune"): rows {"prompt": "...", "category": "..."}
    /// or chat rows whose last user turn is the prompt. Without it, the shipped held-out harmful prompts are used.
    /// </summary>
    public string? PromptFile { get; init; }

    /// <summary>The judge that decides harm (a registered judge name); default: the judge of the caller's safety policy.</summary>
    public string? Judge { get; init; }

    /// <summary>Metrics: "harmful_score" (always measured) and optionally "over_refusal" (XSTest safe prompts).</summary>
    public IReadOnlyList<string>? Include { get; init; }

    /// <summary>At most this many prompts of the set (1–10000; default all of a file, 100 of the shipped set).</summary>
    public int? MaxPrompts { get; init; }

    /// <summary>Greedy tokens generated per prompt (1–512, default 32).</summary>
    public int? MaxNewTokens { get; init; }

    /// <summary>Responses kept as samples per metric in the report (0–100, default 10).</summary>
    public int? SamplesPerPart { get; init; }
}

/// <summary>A safety evaluation ("safety.evaluation"): its settings, status, and the report once succeeded.</summary>
public sealed record SafetyEvaluationObject(
    string Id, long CreatedAt, string? OrganizationId, string Model, string? PromptFile, string Judge,
    JsonObject Settings, string Status, JsonObject? Report, JsonObject? Error, long? StartedAt, long? FinishedAt)
{
    public string Object => "safety.evaluation";

    internal static SafetyEvaluationObject From(SafetyEvaluation e) => new(
        e.Id, UnixTime.Seconds(e.CreatedAt), e.TenantId, e.Model, e.PromptFileId, e.Judge,
        e.Settings.ToJson(), SafetyNames.Of(e.Status), e.Report?.DeepClone().AsObject(),
        e.Error?.DeepClone().AsObject(), UnixTime.Seconds(e.StartedAt), UnixTime.Seconds(e.FinishedAt));
}
