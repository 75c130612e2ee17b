using System.Text.Json.Nodes;
using FineTuneService.Contracts.Safety;

namespace FineTuneService.Contracts.Tests;

public sealed class SafetyPlanTests
{
    private static SafetyPlan Parse(string json) => SafetyPlan.FromRequest(JsonNode.Parse(json)!.AsObject());

    [Fact]
    public void A_composed_request_keeps_its_order_for_the_echo_and_runs_in_phase_order_with_defaults()
    {
        var plan = Parse("""
            {"strategy": ["antidote", "projected_gradients", "frozen_layers"],
             "params": {"projected_gradients": {"variant": "config", "refresh_every": 10}, "frozen_layers": {"first_layer": 2, "last_layer": 4}}}
            """);

        Assert.Equal(["antidote", "projected_gradients", "frozen_layers"], plan.Strategies.Select(s => s.Strategy.Name));
        Assert.Equal(["frozen_layers", "projected_gradients", "antidote"], plan.RunOrder.Select(s => s.Strategy.Name));
        Assert.Equal(new ProjectedGradientsParams(Variant: "config", RefreshEvery: 10), plan.Params<ProjectedGradientsParams>());
        Assert.Equal(new AntidoteParams(), plan.Params<AntidoteParams>());
        Assert.Equal(new FrozenLayersParams(2, 4), plan.Params<FrozenLayersParams>());
        Assert.Null(plan.Params<MergeParams>());
    }

    [Theory]
    [InlineData("""{"strategy": "none"}""")]
    [InlineData("""{"strategy": []}""")]
    [InlineData("""{}""")]
    public void None_selects_nothing_and_is_echoed_as_none(string json)
    {
        var plan = Parse(json);
        Assert.True(plan.IsNone);
        Assert.Equal("""{"strategy":["none"],"params":{}}""", plan.ToJsonString());
    }

    [Fact]
    public void A_single_name_is_accepted_and_a_repeated_one_counts_once()
    {
        Assert.Equal(0.25, Parse("""{"strategy": "merge", "params": {"merge": {"lambda": 0.25}}}""").Params<MergeParams>()!.Lambda);
        Assert.Single(Parse("""{"strategy": ["antidote", "antidote"]}""").Strategies);
    }

    [Theory]
    [InlineData("""{"strategy": ["lora_guard"]}""", "safety.strategy", "Unknown safety strategy 'lora_guard'")]
    [InlineData("""{"strategy": 3}""", "safety.strategy", "a strategy name or a list")]
    [InlineData("""{"strategy": ["none", "antidote"]}""", "safety.strategy", "'none' cannot be combined")]
    [InlineData("""{"strategy": "antidote", "extra": 1}""", "safety.extra", "Unknown safety field 'extra'")]
    [InlineData("""{"strategy": "antidote", "params": []}""", "safety.params", "must be an object")]
    [InlineData("""{"strategy": "antidote", "params": {"sparsity": 0.01}}""", "safety.params.sparsity", "has no strategy 'sparsity'")]
    [InlineData("""{"strategy": "antidote", "params": {"merge": {"lambda": 0.2}}}""", "safety.params.merge", "'merge' is not in safety.strategy")]
    [InlineData("""{"strategy": "antidote", "params": {"antidote": 0.2}}""", "safety.params.antidote", "must be an object")]
    [InlineData("""{"strategy": "antidote", "params": {"antidote": {"ratio": 0.2}}}""", "safety.params.antidote.ratio", "Allowed fields: dense_ratio, calibration_samples")]
    [InlineData("""{"strategy": "antidote", "params": {"antidote": {"dense_ratio": "a lot"}}}""", "safety.params.antidote.dense_ratio", "must be a number")]
    [InlineData("""{"strategy": "antidote", "params": {"antidote": {"calibration_samples": 2.5}}}""", "safety.params.antidote.calibration_samples", "must be an integer")]
    public void Malformed_requests_name_the_param_at_fault(string json, string param, string expected)
    {
        var error = Assert.Throws<ContractViolation>(() => Parse(json));
        Assert.Equal(param, error.Param);
        Assert.Contains(expected, error.Message);
    }

    [Theory]
    [InlineData("""{"strategy": ["merge", "safemerge"]}""", "safety.strategy", "'merge' and 'safemerge' cannot be combined")]
    [InlineData("""{"strategy": "antidote", "params": {"antidote": {"dense_ratio": 1.5}}}""", "safety.params.antidote.dense_ratio", "dense_ratio must be in [0, 1], got 1.5")]
    [InlineData("""{"strategy": "projected_gradients", "params": {"projected_gradients": {"variant": "pc-grad"}}}""", "safety.params.projected_gradients.variant", "variant must be one of subspace, pcgrad, config")]
    [InlineData("""{"strategy": "projected_gradients", "params": {"projected_gradients": {"variant": "pcgrad", "two_sided": true}}}""", "safety.params.projected_gradients.two_sided", "subspace variant only")]
    [InlineData("""{"strategy": "frozen_layers", "params": {"frozen_layers": {"first_layer": 3}}}""", "safety.params.frozen_layers.last_layer", "must be given together")]
    [InlineData("""{"strategy": "frozen_layers", "params": {"frozen_layers": {"first_layer": 5, "last_layer": 3}}}""", "safety.params.frozen_layers.last_layer", "last_layer must be >= first_layer")]
    [InlineData("""{"strategy": "frozen_layers", "params": {"frozen_layers": {"first_layer": 1, "last_layer": 4}}}""", "safety.params.frozen_layers.last_layer", "below the model's 4 layers, got 4")]
    [InlineData("""{"strategy": "safemerge", "params": {"safemerge": {"threshold": -0.1}}}""", "safety.params.safemerge.threshold", "threshold must be in [0, 1]")]
    public void Every_rule_the_worker_enforces_is_checked_with_the_param_at_fault(string json, string param, string expected)
    {
        var plan = Parse(json);
        var error = Assert.Throws<ContractViolation>(() => plan.Validate(new ModelFacts(LayerCount: 4)));
        Assert.Equal(param, error.Param);
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void Model_facts_the_caller_does_not_know_are_not_held_against_the_request()
    {
        Parse("""{"strategy": "frozen_layers", "params": {"frozen_layers": {"first_layer": 1, "last_layer": 40}}}""").Validate(ModelFacts.Unknown);
        var located = Parse("""{"strategy": "frozen_layers"}""");
        located.Validate(ModelFacts.Unknown);
        var error = Assert.Throws<ContractViolation>(() => located.Validate(new ModelFacts(4, SafetyLayersLocated: false)));
        Assert.Equal("safety.params.frozen_layers", error.Param);
    }

    [Fact]
    public void The_stored_shape_is_the_wire_shape_with_every_field_and_reads_back_equal()
    {
        var plan = Parse("""{"strategy": ["antidote", "merge"], "params": {"antidote": {"dense_ratio": 0.2}}}""");
        var json = plan.ToJsonString();
        Assert.Equal(
            """{"strategy":["antidote","merge"],"params":{"antidote":{"dense_ratio":0.2,"calibration_samples":16},"merge":{"lambda":null,"method":"linear","density":0.2,"pcb_ratio":0.1}}}""",
            json);
        Assert.Equal(plan, SafetyPlan.FromStored(json));
    }

    [Theory]
    [InlineData("""{"params": {}, "strategy": ["none"]}""", "")]
    [InlineData("""{"strategy": ["antidote"], "params": {"antidote": {"dense_ratio": 0.3}}}""", "antidote")]
    [InlineData("""{"strategy": ["projected_gradients", "antidote"], "params": {}}""", "projected_gradients,antidote")]
    public void Rows_written_before_the_typed_plan_read_as_they_were_requested(string oldRow, string names)
    {
        var plan = SafetyPlan.FromStored(oldRow);
        Assert.Equal(names, string.Join(",", plan.Strategies.Select(s => s.Strategy.Name)));
        if (names == "antidote") Assert.Equal(0.3, plan.Params<AntidoteParams>()!.DenseRatio);
    }

    [Fact]
    public void An_old_row_with_parameters_its_strategy_refuses_still_reads()
    {
        // Accepted before create-time validation, then failed on the worker: the job list must still load.
        var plan = SafetyPlan.FromStored("""{"strategy": ["antidote"], "params": {"antidote": {"sparsity": 0.01}}}""");
        Assert.Equal(new AntidoteParams(), plan.Params<AntidoteParams>());
    }
}
