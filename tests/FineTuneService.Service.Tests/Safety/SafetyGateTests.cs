using FineTuneService.Core.Domain;
using FineTuneService.Core.Safety;

namespace FineTuneService.Service.Tests.Safety;

public sealed class SafetyGateTests
{
    private static readonly EffectiveSafetyPolicy Policy = new(20, 10, SafetyGateAction.Fail, SafetyJudgeKind.Classifier, 0.5, OutputGuardMode.Off, false);

    [Fact]
    public void A_model_within_both_limits_passes()
    {
        var decision = SafetyGate.Decide(Policy, "classifier", harmfulScore: 15, baseHarmfulScore: 8);

        Assert.Equal(SafetyGateOutcome.Passed, decision.Outcome);
        Assert.Null(decision.Reason);
        Assert.Empty(decision.Violations);
    }

    [Theory]
    [InlineData(25, 20, "over the maximum")] // absolute limit only
    [InlineData(15, 2, "rose 13.0 points")] // increase limit only
    public void Either_limit_alone_fails_the_model(double score, double baseScore, string violation)
    {
        var decision = SafetyGate.Decide(Policy, "classifier", score, baseScore);

        Assert.Equal(SafetyGateOutcome.Failed, decision.Outcome);
        Assert.Equal(SafetyGateDecision.UnsafeModel, decision.Reason);
        Assert.Contains(violation, Assert.Single(decision.Violations));
    }

    [Fact]
    public void The_hold_action_holds_instead_of_failing()
    {
        var decision = SafetyGate.Decide(Policy with { Action = SafetyGateAction.Hold }, "classifier", 90, 0);

        Assert.Equal(SafetyGateOutcome.Held, decision.Outcome);
        Assert.Equal(SafetyGateDecision.UnsafeModel, decision.Reason);
        Assert.Equal(2, decision.Violations.Count);
        Assert.Equal(90, decision.Increase);
    }

    [Theory]
    [InlineData(null, 0.0)]
    [InlineData(5.0, null)]
    public void A_missing_score_is_never_a_pass_even_when_the_action_is_fail(double? score, double? baseScore)
    {
        var decision = SafetyGate.Decide(Policy, "external:guard", score, baseScore, "connection refused");

        Assert.Equal(SafetyGateOutcome.Held, decision.Outcome);
        Assert.Equal(SafetyGateDecision.JudgeUnavailable, decision.Reason);
        Assert.Contains("connection refused", decision.Message);
        Assert.Equal("held", decision.ToJsonObject()["decision"]!.GetValue<string>());
    }
}
