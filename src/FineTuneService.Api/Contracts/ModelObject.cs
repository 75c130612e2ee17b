using System.Text.Json.Nodes;
using FineTuneService.Core.Models;

namespace FineTuneService.Api.Contracts;

/// <summary>
/// OpenAI "model" object. <paramref name="Lineage"/> (an extension) is set on a hardened base model: the base it was
/// hardened from, the method and its parameters (<c>{"hardened_from", "method", "params"}</c>).
/// <paramref name="SafetyScores"/> (an extension) is a base model's scores, measured once when its weights were
/// registered: <c>{judge, harmful_score, judges, refusal_rate, over_refusal_rate, scored_at}</c>; null until scored.
/// </summary>
public sealed record ModelObject(string Id, long Created, string OwnedBy, JsonObject? Lineage = null, JsonObject? SafetyScores = null)
{
    public string Object => "model";

    internal static ModelObject From(UsableModel model) => From(model, null);

    internal static ModelObject From(UsableModel model, JsonObject? safetyScores) => new(model.Id, UnixTime.Seconds(model.CreatedAt), model.OwnedBy,
        model.Hardening is { } hardening
            ? new JsonObject
            {
                ["hardened_from"] = hardening["hardened_from"]?.DeepClone(),
                ["method"] = hardening["method"]?.DeepClone(),
                ["params"] = hardening["params"]?.DeepClone(),
            }
            : null,
        safetyScores);
}

/// <summary>Answer to <c>DELETE /v1/models/{model}</c>, as OpenAI's.</summary>
public sealed record ModelDeleted(string Id, bool Deleted)
{
    public string Object => "model";
}

/// <summary>
/// <c>safety_report.json</c> of a model download: the job's safety settings and gate verdict (<c>safety</c>, as on the
/// job) and every stage's stored evaluation. <c>kind</c> is "base", "fine_tuned" or "checkpoint".
/// </summary>
public sealed record ModelSafetyReport(string Model, string Kind, string? FineTuningJob, string? BaseModel, int? CheckpointStep,
    string? Note, System.Text.Json.Nodes.JsonObject? Safety, IReadOnlyList<SafetyReportObject> Reports)
{
    public string Object => "model.safety_report";
}
