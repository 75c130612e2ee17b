using FineTuneService.Ml.Safety.Strategies;

namespace FineTuneService.Ml.Tests.Safety;

public sealed class SafetyStrategyPlanTests
{
    [Fact]
    public void Parses_a_composed_request_with_params_and_defaults_in_phase_order()
    {
        var plan = SafetyStrategyPlan.Parse("""
            {"strategy": ["antidote", "projected_gradients", "frozen_layers"],
             "params": {"projected_gradients": {"variant": "config", "refresh_every": 10}, "frozen_layers": {"first_layer": 2, "last_layer": 4}}}
            """);

        Assert.Equal([SafetyStrategyNames.FrozenLayers, SafetyStrategyNames.ProjectedGradients, SafetyStrategyNames.Antidote], plan.Strategies);
        Assert.Equal(new ProjectedGradientsParams(Variant: "config", RefreshEvery: 10), plan.ProjectedGradients);
        Assert.Equal(new AntidoteParams(), plan.Antidote);
        Assert.Equal(0.1, plan.Antidote!.DenseRatio);
        Assert.Equal(new FrozenLayersParams(2, 4), plan.FrozenLayers);
        Assert.Null(plan.Merge);
    }

    [Theory]
    [InlineData("""{"strategy": "none"}""")]
    [InlineData("""{"strategy": []}""")]
    public void None_selects_nothing(string json) => Assert.Empty(SafetyStrategyPlan.Parse(json).Strategies);

    [Fact]
    public void A_single_name_is_accepted()
    {
        var plan = SafetyStrategyPlan.Parse("""{"strategy": "merge", "params": {"merge": {"lambda": 0.25}}}""");
        Assert.Equal(0.25, plan.Merge!.Lambda);
    }

    [Theory]
    [InlineData("""{"strategy": ["lora_guard"]}""", "Unknown safety strategy 'lora_guard'")]
    [InlineData("""{"strategy": ["none", "antidote"]}""", "'none' cannot be combined")]
    [InlineData("""{"strategy": ["merge", "safemerge"]}""", "choose one")]
    [InlineData("""{"strategy": ["antidote", "antidote"]}""", "listed twice")]
    [InlineData("""{"params": {}}""", "'strategy' is required")]
    [InlineData("""{"strategy": "antidote", "extra": 1}""", "Unknown safety setting 'extra'")]
    [InlineData("""{"strategy": "antidote", "params": {"merge": {"lambda": 0.2}}}""", "params.merge is given but 'merge' is not in 'strategy'")]
    [InlineData("""{"strategy": "antidote", "params": {"antidote": {"ratio": 0.2}}}""", "Allowed fields: dense_ratio, calibration_samples")]
    [InlineData("""{"strategy": "antidote", "params": {"antidote": {"dense_ratio": "a lot"}}}""", "params.antidote")]
    [InlineData("""{"strategy": "antidote", "params": {"antidote": {"dense_ratio": 1.5}}}""", "dense_ratio must be in [0, 1], got 1.5")]
    [InlineData("""{"strategy": "projected_gradients", "params": {"projected_gradients": {"variant": "pc-grad"}}}""", "variant must be one of subspace, pcgrad, config")]
    [InlineData("""{"strategy": "projected_gradients", "params": {"projected_gradients": {"variant": "pcgrad", "two_sided": true}}}""", "two_sided applies to the subspace variant only")]
    [InlineData("""{"strategy": "frozen_layers", "params": {"frozen_layers": {"first_layer": 3}}}""", "must be given together")]
    [InlineData("""{"strategy": "frozen_layers", "params": {"frozen_layers": {"first_layer": 5, "last_layer": 3}}}""", "last_layer must be >= first_layer")]
    [InlineData("""{"strategy": "safemerge", "params": {"safemerge": {"threshold": -0.1}}}""", "threshold must be in [0, 1]")]
    [InlineData("""["antidote"]""", "must be a JSON object")]
    [InlineData("""{"strategy": "antidote",""", "not valid JSON")]
    public void Rejects_bad_requests_with_a_message_that_says_what_to_fix(string json, string expected)
    {
        var error = Assert.Throws<SafetyStrategyConfigurationException>(() => SafetyStrategyPlan.Parse(json));
        Assert.Contains(expected, error.Message);
    }
}
