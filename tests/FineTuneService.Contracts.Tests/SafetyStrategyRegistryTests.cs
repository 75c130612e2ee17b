using System.ComponentModel;
using System.Text.Json.Nodes;
using FineTuneService.Contracts.Safety;

namespace FineTuneService.Contracts.Tests;

/// <summary>A strategy registered once is known to validation, docs and storage, with no other edit.</summary>
public sealed class SafetyStrategyRegistryTests
{
    /// <summary>A strategy the service does not ship, registered only in this test.</summary>
    public sealed record NoiseParams(
        [property: Description("Standard deviation of the added noise.")] double Sigma = 0.01) : ISafetyStrategyParams
    {
        public IEnumerable<ParamError> Errors(ModelFacts model)
        {
            if (!(Sigma > 0)) yield return new("sigma", $"sigma must be positive, got {Sigma}.");
        }
    }

    private static readonly SafetyStrategyRegistry Registry = new(
        [.. SafetyStrategies.Registry.All, SafetyStrategy.Define<NoiseParams>("noise", SafetyPhase.EveryStep, "Adds Gaussian noise to every gradient.")]);

    [Fact]
    public void A_new_registration_is_parsed_validated_ordered_and_documented()
    {
        var plan = SafetyPlan.FromRequest(JsonNode.Parse("""{"strategy": ["antidote", "noise"], "params": {"noise": {"sigma": 0.5}}}""")!.AsObject(), Registry);
        Assert.Equal(["noise", "antidote"], plan.RunOrder.Select(s => s.Strategy.Name));
        Assert.Equal(0.5, plan.Params<NoiseParams>()!.Sigma);

        var bad = SafetyPlan.FromRequest(JsonNode.Parse("""{"strategy": "noise", "params": {"noise": {"sigma": 0}}}""")!.AsObject(), Registry);
        Assert.Equal("safety.params.noise.sigma", Assert.Throws<ContractViolation>(() => bad.Validate(ModelFacts.Unknown)).Param);

        var field = Assert.Single(Registry.Find("noise")!.Fields);
        Assert.Equal(("sigma", "a number", "Standard deviation of the added noise."), (field.Name, field.Kind, field.Description));
        Assert.Equal(0.01, field.Default);
        Assert.Equal(plan, SafetyPlan.FromStored(plan.ToJsonString(), Registry));
    }

    [Fact]
    public void The_shipped_registry_lists_each_strategy_once_in_phase_order_with_documented_fields()
    {
        var all = SafetyStrategies.Registry.All;
        Assert.Equal(all.OrderBy(s => s.Phase).Select(s => s.Name), all.Select(s => s.Name));
        Assert.Equal(all.Count, all.Select(s => s.Name).Distinct().Count());
        Assert.All(all, s => Assert.False(string.IsNullOrWhiteSpace(s.Description)));
        Assert.All(all.SelectMany(s => s.Fields), f => Assert.False(string.IsNullOrWhiteSpace(f.Description), f.Name));
        Assert.All(all, s => Assert.Empty(s.Defaults.Errors(ModelFacts.Unknown)));
    }
}
