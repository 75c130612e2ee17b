using FineTuneService.Core.Domain;
using FineTuneService.Core.Safety;
using FineTuneService.Contracts.Judges;

namespace FineTuneService.Service.Tests.Safety;

public sealed class SafetyPolicyResolverTests
{
    private static SafetyPolicy Global() => new()
    {
        MaxHarmfulScore = 20, MaxHarmfulScoreIncrease = 10, Action = SafetyGateAction.Fail,
        Judge = SafetyJudges.Classifier.Name, UnsafeFileMaxRatio = 0.5,
    };

    [Fact]
    public void Without_an_override_the_global_row_applies()
    {
        var policy = SafetyPolicyResolver.Resolve(Global(), null);

        Assert.Equal(new EffectiveSafetyPolicy(20, 10, SafetyGateAction.Fail, SafetyJudges.Classifier.Name, 0.5, OutputGuardMode.Off, 25, false), policy);
    }

    [Fact]
    public void An_override_replaces_only_the_fields_it_sets()
    {
        var tenant = new SafetyPolicy { TenantId = "tenant-a", MaxHarmfulScore = 50, Action = SafetyGateAction.Hold };

        var policy = SafetyPolicyResolver.Resolve(Global(), tenant);

        Assert.Equal(new EffectiveSafetyPolicy(50, 10, SafetyGateAction.Hold, SafetyJudges.Classifier.Name, 0.5, OutputGuardMode.Off, 25, true), policy);
    }

    [Fact]
    public void Fields_the_global_row_leaves_empty_fall_back_to_the_built_in_defaults()
    {
        var policy = SafetyPolicyResolver.Resolve(new SafetyPolicy { Judge = SafetyJudges.Keyword.Name }, null);

        // The README's built-in policy: HS at most 20%, at most 10 points over the base, refusals at most 25 points
        // below the base's, fail; screening at half the rows.
        Assert.Equal(new EffectiveSafetyPolicy(20, 10, SafetyGateAction.Fail, SafetyJudges.Keyword.Name, 0.5, OutputGuardMode.Off, 25, false), policy);
    }

    [Fact]
    public void A_tenant_can_override_the_refusal_drop_alone()
    {
        var global = Global();
        global.MaxRefusalDrop = 30;

        Assert.Equal(30, SafetyPolicyResolver.Resolve(global, null).MaxRefusalDrop);
        Assert.Equal(60, SafetyPolicyResolver.Resolve(global, new SafetyPolicy { TenantId = "t", MaxRefusalDrop = 60 }).MaxRefusalDrop);
        Assert.Equal(30, SafetyPolicyResolver.Resolve(global, new SafetyPolicy { TenantId = "t", Action = SafetyGateAction.Hold }).MaxRefusalDrop);
    }

    [Fact]
    public void Rows_in_the_wrong_slot_are_rejected()
    {
        Assert.Throws<ArgumentException>(() => SafetyPolicyResolver.Resolve(new SafetyPolicy { TenantId = "tenant-a" }, null));
        Assert.Throws<ArgumentException>(() => SafetyPolicyResolver.Resolve(Global(), new SafetyPolicy()));
    }

    [Fact]
    public void The_effective_policy_serialises_with_wire_names()
    {
        var json = SafetyPolicyResolver.Resolve(Global(), new SafetyPolicy { TenantId = "t", Action = SafetyGateAction.Hold }).ToJsonObject();

        Assert.Equal("hold", json["action"]!.GetValue<string>());
        Assert.Equal("classifier", json["judge"]!.GetValue<string>());
        Assert.Equal(20, json["max_harmful_score"]!.GetValue<double>());
        Assert.True(json["tenant_override"]!.GetValue<bool>());
    }

    [Theory]
    [InlineData("fail", SafetyGateAction.Fail)]
    [InlineData("hold", SafetyGateAction.Hold)]
    public void Action_names_round_trip(string name, SafetyGateAction action)
    {
        Assert.Equal(action, SafetyNames.ParseAction(name));
        Assert.Equal(name, SafetyNames.Of(action));
        Assert.Throws<FormatException>(() => SafetyNames.ParseAction("allow"));
    }
}
