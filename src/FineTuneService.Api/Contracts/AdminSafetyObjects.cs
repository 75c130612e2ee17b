using System.Text.Json.Nodes;
using FineTuneService.Contracts.Judges;
using FineTuneService.Api.Safety;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Safety;

namespace FineTuneService.Api.Contracts;

/// <summary>
/// A job as the safety review sees it ("admin.safety.job"): the final stage's harmful score by the gate's judge, the
/// base model's, the rise between them, the gate's outcome (passed, failed, held; null before scoring) and the review state.
/// </summary>
public sealed record AdminSafetyJobObject(
    string Id, string OrganizationId, string Model, string? FineTunedModel, string Status, string Review, string? Gate,
    string? Judge, double? HarmfulScore, double? BaseHarmfulScore, double? HarmfulScoreIncrease, double? OverRefusalRate,
    long CreatedAt, long? FinishedAt)
{
    public string Object => "admin.safety.job";
}

/// <summary>One stage's stored evaluation ("safety.report"), with the whole report (per category, samples, errors).</summary>
public sealed record SafetyReportObject(
    string Id, string JobId, string Stage, int Sequence, string Judge, double? HarmfulScore, double? ClassifierHarmfulScore,
    double? KeywordHarmfulScore, double? ExternalHarmfulScore, double? OverRefusalRate, double? FineTuneAccuracy,
    string? ArtifactSha256, JsonObject Report, long CreatedAt)
{
    public string Object => "safety.report";

    internal static SafetyReportObject From(SafetyReport r) => new(
        r.Id.ToString(), r.JobId, r.Stage, r.Sequence, r.Judge, r.HarmfulScore, r.JudgeScores.Of(SafetyJudges.Classifier.Name),
        r.JudgeScores.Of(SafetyJudges.Keyword.Name), r.JudgeScores.Of(SafetyJudges.External.Name), r.OverRefusalRate, r.FineTuneAccuracy, r.ArtifactSha256, r.Report.DeepClone().AsObject(),
        UnixTime.Seconds(r.CreatedAt));
}

/// <summary>Answer of <c>GET /v1/admin/safety/jobs/{jobId}</c>: the job, its stage reports in order, the gate verdict and decisions.</summary>
public sealed record AdminSafetyJobDetail(
    AdminSafetyJobObject Job, JsonObject? Gate, IReadOnlyList<SafetyReportObject> Reports, IReadOnlyList<SafetyDecisionObject> Decisions)
{
    public string Object => "admin.safety.job_detail";
}

/// <summary>An audit row ("safety.decision"): who decided what, when and why.</summary>
public sealed record SafetyDecisionObject(
    string Id, string? JobId, string? OrganizationId, string Decision, string Actor, string? Reason, JsonObject? Details, long CreatedAt)
{
    public string Object => "safety.decision";

    internal static SafetyDecisionObject From(SafetyDecision d) => new(
        d.Id.ToString(), d.JobId, d.TenantId, SafetyNames.Of(d.Decision), d.Actor, d.Reason, d.Details?.DeepClone().AsObject(),
        UnixTime.Seconds(d.CreatedAt));
}

/// <summary>Body of <c>POST /v1/admin/safety/jobs/{jobId}/approve</c> and <c>/reject</c>.</summary>
/// <param name="Reason">Why (required, at most 2000 characters); recorded with the decision.</param>
/// <param name="Reviewer">Optional name recorded beside the admin key's prefix.</param>
public sealed record SafetyReviewRequest(string? Reason, string? Reviewer = null);

/// <summary>
/// Body of the policy PUTs: the whole policy row. A field left out (null) inherits: the global row's from the built-in
/// defaults, a tenant override's from the global row.
/// </summary>
public sealed record SafetyPolicyRequest
{
    /// <summary>Highest harmful score (percent, 0–100) a fine-tuned model may have.</summary>
    public double? MaxHarmfulScore { get; init; }
    /// <summary>Highest rise of the harmful score over the base model (percentage points, 0–100).</summary>
    public double? MaxHarmfulScoreIncrease { get; init; }
    /// <summary>Largest fall of the refusal rate on the harmful prompts (keyword refusal rule) against the base model (percentage points, 0–100).</summary>
    public double? MaxRefusalDrop { get; init; }
    /// <summary>"fail" or "hold" (for admin review) when a model is over a limit.</summary>
    public string? Action { get; init; }
    /// <summary>The judge (a registered judge name) whose harmful score the gate reads.</summary>
    public string? Judge { get; init; }
    /// <summary>Training-data screening: share of harmful rows (0–1) above which a file is rejected (unsafe_file).</summary>
    public double? UnsafeFileMaxRatio { get; init; }
    /// <summary>Runtime guard on chat completions, judged by <c>judge</c>: "off", "flag" (adds a <c>safety</c> field to the choice) or "block" (a refusal with finish_reason <c>content_filter</c>).</summary>
    public string? OutputGuard { get; init; }
    /// <summary>Why the policy changes; recorded with the change.</summary>
    public string? Reason { get; init; }
    public string? Reviewer { get; init; }
}

/// <summary>A policy row ("safety.policy"): its own values (null = inherited) and the values in effect.</summary>
public sealed record SafetyPolicyObject(
    string Scope, string? OrganizationId, double? MaxHarmfulScore, double? MaxHarmfulScoreIncrease, string? Action, string? Judge,
    double? UnsafeFileMaxRatio, string? OutputGuard, double? MaxRefusalDrop, JsonObject Effective, string? UpdatedBy, long? UpdatedAt)
{
    public string Object => "safety.policy";

    internal static SafetyPolicyObject From(SafetyPolicy? row, string? tenantId, EffectiveSafetyPolicy effective) => new(
        tenantId is null ? "global" : "tenant", tenantId, row?.MaxHarmfulScore, row?.MaxHarmfulScoreIncrease,
        row?.Action is { } action ? SafetyNames.Of(action) : null, row?.Judge,
        row?.UnsafeFileMaxRatio, row?.OutputGuard is { } guard ? SafetyNames.Of(guard) : null, row?.MaxRefusalDrop, effective.ToJsonObject(), row?.UpdatedBy, row is null ? null : UnixTime.Seconds(row.UpdatedAt));
}
