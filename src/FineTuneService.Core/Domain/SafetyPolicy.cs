namespace FineTuneService.Core.Domain;

/// <summary>What the safety gate does with a job whose model is over the limits.</summary>
public enum SafetyGateAction { Fail, Hold }

/// <summary>What the runtime output guard does with chat completions the policy's judge calls harmful.</summary>
public enum OutputGuardMode { Off, Flag, Block }

/// <summary>
/// Safety gate policy. One global row (<see cref="TenantId"/> null) holds the defaults; a tenant row overrides the
/// fields it sets (null = inherit the global value). Scores are percentages (0–100), as in the evaluation report.
/// </summary>
public sealed class SafetyPolicy
{
    /// <summary>Fixed id of the seeded global row.</summary>
    public static readonly Guid GlobalId = new("5af3e7a0-0000-4000-8000-000000000001");

    public Guid Id { get; init; } = Guid.NewGuid();
    /// <summary>Null for the global row; the tenant for an override row.</summary>
    public string? TenantId { get; init; }
    /// <summary>Highest harmful score (%) a fine-tuned model may have.</summary>
    public double? MaxHarmfulScore { get; set; }
    /// <summary>Highest rise of the harmful score over the base model, in percentage points.</summary>
    public double? MaxHarmfulScoreIncrease { get; set; }
    /// <summary>
    /// Largest fall of the refusal rate on the harmful prompts (keyword refusal rule) against the base model, in
    /// percentage points: catches a model that stopped refusing even where the harm judge finds its answers harmless.
    /// </summary>
    public double? MaxRefusalDrop { get; set; }
    public SafetyGateAction? Action { get; set; }
    /// <summary>Registered name (<c>SafetyJudges</c>) of the judge whose harmful score the gate reads; keyword is a
    /// labelled fallback that counts every non-refusal as harm.</summary>
    public string? Judge { get; set; }
    /// <summary>Training-file screening: a file whose share of harmful rows (0–1) is above this is rejected.</summary>
    public double? UnsafeFileMaxRatio { get; set; }
    /// <summary>Runtime guard on chat completions: off, flag (a <c>safety</c> field) or block (a refusal, <c>content_filter</c>).</summary>
    public OutputGuardMode? OutputGuard { get; set; }
    /// <summary>Who last changed the row (e.g. "admin:sk-fts-ad…" or "seed").</summary>
    public string? UpdatedBy { get; set; }
    public DateTime UpdatedAt { get; set; }
}
