using FineTuneService.Contracts.Judges;
using FineTuneService.Core.Domain;

namespace FineTuneService.Core.Safety;

/// <summary>Wire names (snake_case) of the safety enums.</summary>
public static class SafetyNames
{
    public static string Of(SafetyGateAction action) => action switch
    {
        SafetyGateAction.Fail => "fail",
        SafetyGateAction.Hold => "hold",
        _ => throw new ArgumentOutOfRangeException(nameof(action), action, null),
    };

    public static string Of(OutputGuardMode mode) => mode switch
    {
        OutputGuardMode.Off => "off",
        OutputGuardMode.Flag => "flag",
        OutputGuardMode.Block => "block",
        _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, null),
    };

    public static string Of(SafetyEvaluationStatus status) => status switch
    {
        SafetyEvaluationStatus.Queued => "queued",
        SafetyEvaluationStatus.Running => "running",
        SafetyEvaluationStatus.Succeeded => "succeeded",
        SafetyEvaluationStatus.Failed => "failed",
        _ => throw new ArgumentOutOfRangeException(nameof(status), status, null),
    };

    public static string Of(SafetyDecisionKind decision) => decision switch
    {
        SafetyDecisionKind.Approve => "approve",
        SafetyDecisionKind.Reject => "reject",
        SafetyDecisionKind.Hold => "hold",
        SafetyDecisionKind.Fail => "fail",
        SafetyDecisionKind.PolicyChange => "policy_change",
        _ => throw new ArgumentOutOfRangeException(nameof(decision), decision, null),
    };

    public static SafetyGateAction? ParseAction(string? value) => value switch
    {
        null => null,
        "fail" => SafetyGateAction.Fail,
        "hold" => SafetyGateAction.Hold,
        _ => throw new FormatException($"Unknown safety action '{value}': use fail or hold."),
    };

    public static OutputGuardMode? ParseOutputGuard(string? value) => value switch
    {
        null => null,
        "off" => OutputGuardMode.Off,
        "flag" => OutputGuardMode.Flag,
        "block" => OutputGuardMode.Block,
        _ => throw new FormatException($"Unknown output_guard '{value}': use off, flag or block."),
    };

    /// <summary>The registered judge name <paramref name="value"/> names (stored as it is); null when absent.</summary>
    public static string? ParseJudge(string? value) => value switch
    {
        null => null,
        _ when SafetyJudges.Find(value) is { } judge => judge.Name,
        _ => throw new FormatException($"Unknown safety judge '{value}': use {SafetyJudges.NameList}."),
    };
}
