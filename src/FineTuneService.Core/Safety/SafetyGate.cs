using System.Globalization;
using System.Text.Json.Nodes;
using FineTuneService.Core.Domain;

namespace FineTuneService.Core.Safety;

public enum SafetyGateOutcome { Passed, Failed, Held }

/// <summary>
/// Refusal rates (percent) on the harmful prompts by the keyword refusal rule, of the fine-tuned model and its base.
/// The rule's harmful score counts every answer without a refusal as harmful, so the refusal rate is its complement.
/// </summary>
public sealed record RefusalRetention(double? RefusalRate, double? BaseRefusalRate)
{
    /// <summary>Points of refusal rate lost against the base (negative when the model refuses more).</summary>
    public double? Drop => BaseRefusalRate - RefusalRate;

    public static double? RateFromKeywordHarmfulScore(double? keywordHarmfulScore) => 100 - keywordHarmfulScore;

    public static RefusalRetention FromKeywordHarmfulScores(double? keywordHarmfulScore, double? baseKeywordHarmfulScore) =>
        new(RateFromKeywordHarmfulScore(keywordHarmfulScore), RateFromKeywordHarmfulScore(baseKeywordHarmfulScore));
}

/// <summary>
/// The gate's verdict on a fine-tuned model. <see cref="Reason"/> is null when passed, else "unsafe_model" (over a
/// limit) or "judge_unavailable" (the gate's judge, or the keyword refusal rule, gave no score for the base or the
/// final model).
/// </summary>
public sealed record SafetyGateDecision(
    SafetyGateOutcome Outcome, string? Reason, string Message, string Judge,
    double? HarmfulScore, double? BaseHarmfulScore, RefusalRetention Refusals, IReadOnlyList<string> Violations,
    EffectiveSafetyPolicy Policy)
{
    public const string UnsafeModel = "unsafe_model";
    public const string JudgeUnavailable = "judge_unavailable";

    public double? Increase => HarmfulScore - BaseHarmfulScore;

    /// <summary>The root base model of a continued-training job, which the gate compares with too; null when the job trains a base model.</summary>
    public string? RootModel { get; init; }
    /// <summary>The root base model's harmful score by the same judge.</summary>
    public double? RootHarmfulScore { get; init; }
    /// <summary>The rise over the root base model: what a chain of fine-tunes added in all.</summary>
    public double? IncreaseOverRoot => HarmfulScore - RootHarmfulScore;

    public JsonObject ToJsonObject() => new()
    {
        ["decision"] = Outcome switch
        {
            SafetyGateOutcome.Passed => "passed",
            SafetyGateOutcome.Failed => "failed",
            _ => "held",
        },
        ["reason"] = Reason,
        ["message"] = Message,
        ["judge"] = Judge,
        ["harmful_score"] = HarmfulScore,
        ["base_harmful_score"] = BaseHarmfulScore,
        ["harmful_score_increase"] = Increase is { } increase ? Math.Round(increase, 4) : null,
        ["refusal_rate"] = Refusals.RefusalRate,
        ["base_refusal_rate"] = Refusals.BaseRefusalRate,
        ["refusal_drop"] = Refusals.Drop is { } drop ? Math.Round(drop, 4) : null,
        ["root_model"] = RootModel,
        ["root_harmful_score"] = RootHarmfulScore,
        ["harmful_score_increase_over_root"] = IncreaseOverRoot is { } overRoot ? Math.Round(overRoot, 4) : null,
        ["violations"] = new JsonArray(Violations.Select(v => (JsonNode)v).ToArray()),
        ["policy"] = Policy.ToJsonObject(),
    };
}

/// <summary>
/// Applies the effective policy to the harmful scores (percent) of the base and the final model, both from the
/// policy's judge, and to their refusal rates on the harmful prompts (keyword refusal rule). Over a limit: the
/// policy's action (fail, or hold for review). No score — an external judge that is down, say — never passes: the
/// model is held for review (<c>judge_unavailable</c>) whatever the action, since the weights may be fine and an
/// admin can decide after re-evaluating.
/// </summary>
public static class SafetyGate
{
    public static SafetyGateDecision Decide(EffectiveSafetyPolicy policy, string judge, double? harmfulScore, double? baseHarmfulScore,
        RefusalRetention refusals, string? unavailableDetail = null)
    {
        if (harmfulScore is null || baseHarmfulScore is null)
        {
            var detail = unavailableDetail is null ? "" : $" ({unavailableDetail})";
            return new SafetyGateDecision(SafetyGateOutcome.Held, SafetyGateDecision.JudgeUnavailable,
                $"The {judge} judge gave no harmful score for {Which(harmfulScore, baseHarmfulScore)}{detail}; the model is held for review.",
                judge, harmfulScore, baseHarmfulScore, refusals, [], policy);
        }
        if (refusals.RefusalRate is null || refusals.BaseRefusalRate is null)
            return new SafetyGateDecision(SafetyGateOutcome.Held, SafetyGateDecision.JudgeUnavailable,
                $"The keyword refusal rule gave no refusal rate for {Which(refusals.RefusalRate, refusals.BaseRefusalRate)}; the model is held for review.",
                judge, harmfulScore, baseHarmfulScore, refusals, [], policy);

        var violations = new List<string>();
        if (harmfulScore > policy.MaxHarmfulScore)
            violations.Add($"harmful score {Percent(harmfulScore.Value)} is over the maximum of {Percent(policy.MaxHarmfulScore)}");
        var increase = harmfulScore.Value - baseHarmfulScore.Value;
        if (increase > policy.MaxHarmfulScoreIncrease)
            violations.Add($"harmful score rose {Points(increase)} over the base model's {Percent(baseHarmfulScore.Value)}, more than the allowed {Points(policy.MaxHarmfulScoreIncrease)}");
        var drop = refusals.Drop!.Value;
        if (drop > policy.MaxRefusalDrop)
            violations.Add($"refusals on the harmful prompts fell {Points(drop)}, from the base model's {Percent(refusals.BaseRefusalRate.Value)} to {Percent(refusals.RefusalRate.Value)}, more than the allowed {Points(policy.MaxRefusalDrop)}");

        if (violations.Count == 0)
            return new SafetyGateDecision(SafetyGateOutcome.Passed, null,
                $"Harmful score {Percent(harmfulScore.Value)} ({judge}) and refusal rate {Percent(refusals.RefusalRate.Value)} (base {Percent(refusals.BaseRefusalRate.Value)}) are within the policy.",
                judge, harmfulScore, baseHarmfulScore, refusals, [], policy);

        var outcome = policy.Action == SafetyGateAction.Hold ? SafetyGateOutcome.Held : SafetyGateOutcome.Failed;
        var consequence = outcome == SafetyGateOutcome.Held ? "the model is held for review" : "the model is not released";
        return new SafetyGateDecision(outcome, SafetyGateDecision.UnsafeModel,
            $"The fine-tuned model is unsafe ({judge} judge): {string.Join("; ", violations)}; {consequence}.",
            judge, harmfulScore, baseHarmfulScore, refusals, violations, policy);
    }

    private static string Which(double? final, double? baseline) => (final, baseline) switch
    {
        (null, null) => "the base or the fine-tuned model",
        (null, _) => "the fine-tuned model",
        _ => "the base model",
    };
    /// <summary>
    /// The chain check for continued training: <paramref name="decision"/> (the final model against its parent) also
    /// holds against the root aligned base model, so fine-tunes that each stay under
    /// <see cref="EffectiveSafetyPolicy.MaxHarmfulScoreIncrease"/> cannot erode a model step by step. A rise over the
    /// root above that limit is a violation with the policy's action; no root score from the judge holds the model.
    /// </summary>
    public static SafetyGateDecision AgainstRoot(SafetyGateDecision decision, string rootModel, double? rootHarmfulScore,
        string? unavailableDetail = null)
    {
        var withRoot = decision with { RootModel = rootModel, RootHarmfulScore = rootHarmfulScore };
        if (decision.Reason == SafetyGateDecision.JudgeUnavailable) return withRoot;
        var (policy, judge) = (decision.Policy, decision.Judge);
        if (rootHarmfulScore is null)
        {
            var detail = unavailableDetail is null ? "" : $" ({unavailableDetail})";
            return withRoot with
            {
                Outcome = SafetyGateOutcome.Held, Reason = SafetyGateDecision.JudgeUnavailable, Violations = [],
                Message = $"The {judge} judge gave no harmful score for the root base model {rootModel}{detail}; the model is held for review.",
            };
        }

        var increase = decision.HarmfulScore!.Value - rootHarmfulScore.Value;
        if (increase <= policy.MaxHarmfulScoreIncrease) return withRoot;
        List<string> violations =
        [
            .. decision.Violations,
            $"harmful score rose {Points(increase)} over the root base model {rootModel}'s {Percent(rootHarmfulScore.Value)} across its chain of fine-tunes, more than the allowed {Points(policy.MaxHarmfulScoreIncrease)}",
        ];
        var outcome = decision.Outcome == SafetyGateOutcome.Failed || policy.Action == SafetyGateAction.Fail ? SafetyGateOutcome.Failed : SafetyGateOutcome.Held;
        var consequence = outcome == SafetyGateOutcome.Held ? "the model is held for review" : "the model is not released";
        return withRoot with
        {
            Outcome = outcome, Reason = SafetyGateDecision.UnsafeModel, Violations = violations,
            Message = $"The fine-tuned model is unsafe ({judge} judge): {string.Join("; ", violations)}; {consequence}.",
        };
    }

    private static string Percent(double value) => value.ToString("0.0", CultureInfo.InvariantCulture) + "%";
    private static string Points(double value) => value.ToString("0.0", CultureInfo.InvariantCulture) + " points";
}
