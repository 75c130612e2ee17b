using System.Text.Json.Nodes;
using FineTuneService.Contracts.Safety;

namespace FineTuneService.Contracts.Tests;

public sealed class MergeAndPatchParamsTests
{
    private static SafetyPlan Parse(string json) => SafetyPlan.FromRequest(JsonNode.Parse(json)!.AsObject());

    private static ContractViolation Refused(string json, ModelFacts? facts = null) =>
        Assert.Throws<ContractViolation>(() => Parse(json).Validate(facts ?? ModelFacts.Unknown));

    [Theory]
    [InlineData("linear", 0.5)]
    [InlineData("ties", 1.0)]
    [InlineData("pcb", 1.0)]
    public void Merge_methods_default_lambda_as_their_papers_do_and_linear_stays_the_default(string method, double lambda)
    {
        Assert.Equal(MergeMethods.Linear, Parse("""{"strategy": "merge"}""").Params<MergeParams>()!.Method);
        var merge = Parse($$$$"""{"strategy": "merge", "params": {"merge": {"method": "{{{{method}}}}"}}}""").Params<MergeParams>()!;
        Assert.Equal(lambda, merge.EffectiveLambda);
        Assert.Equal(0.3, Parse($$$$"""{"strategy": "merge", "params": {"merge": {"method": "{{{{method}}}}", "lambda": 0.3}}}""").Params<MergeParams>()!.EffectiveLambda);
    }

    [Theory]
    [InlineData("""{"method": "dare"}""", "method", "one of linear, ties, pcb")]
    [InlineData("""{"method": "ties", "density": 0}""", "density", "(0, 1]")]
    [InlineData("""{"method": "pcb", "pcb_ratio": 1.5}""", "pcb_ratio", "(0, 1]")]
    [InlineData("""{"density": 0.5}""", "density", "ties only")]
    [InlineData("""{"method": "ties", "pcb_ratio": 0.3}""", "pcb_ratio", "pcb only")]
    [InlineData("""{"lambda": 1.2}""", "lambda", "[0, 1]")]
    public void Merge_parameters_out_of_bounds_name_the_field(string merge, string field, string expected)
    {
        var error = Refused($$$"""{"strategy": "merge", "params": {"merge": {{{merge}}}}}""");
        Assert.Equal($"safety.params.merge.{field}", error.Param);
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void Ties_and_pcb_need_a_full_fine_tune_while_linear_works_with_lora()
    {
        var lora = new ModelFacts(LoraAdapter: true);
        Assert.Equal("safety.params.merge.method", Refused("""{"strategy": "merge", "params": {"merge": {"method": "pcb"}}}""", lora).Param);
        Parse("""{"strategy": "merge", "params": {"merge": {"method": "linear"}}}""").Validate(lora);
        Parse("""{"strategy": "merge", "params": {"merge": {"method": "ties"}}}""").Validate(new ModelFacts(LoraAdapter: false));
    }

    [Fact]
    public void A_stored_linear_merge_from_before_the_methods_reads_as_linear_with_its_lambda()
    {
        var plan = SafetyPlan.FromStored("""{"strategy": ["merge"], "params": {"merge": {"lambda": 0.25}}}""");
        Assert.Equal(new MergeParams(Lambda: 0.25), plan.Params<MergeParams>());
        Assert.Equal(0.25, plan.Params<MergeParams>()!.EffectiveLambda);
    }

    [Theory]
    [InlineData("""{"examples": 9}""", "examples", "[1, 8]")]
    [InlineData("""{"examples": 0}""", "examples", "[1, 8]")]
    [InlineData("""{"steps": 0}""", "steps", "[1, 1000]")]
    [InlineData("""{"learning_rate": 0}""", "learning_rate", "(0, 10]")]
    [InlineData("""{"rank": 0}""", "rank", ">= 1")]
    public void Safety_patch_takes_at_most_eight_examples_and_positive_settings(string patch, string field, string expected)
    {
        var error = Refused($$$"""{"strategy": "safety_patch", "params": {"safety_patch": {{{patch}}}}}""");
        Assert.Equal($"safety.params.safety_patch.{field}", error.Param);
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void Safety_patch_runs_after_the_other_post_training_steps_and_combines_with_a_merge()
    {
        var plan = Parse("""{"strategy": ["safety_patch", "merge", "antidote"], "params": {"safety_patch": {"examples": 8}}}""");
        Assert.Equal(["antidote", "merge", "safety_patch"], plan.RunOrder.Select(s => s.Strategy.Name));
        plan.Validate(ModelFacts.Unknown);
        Assert.Equal(8, plan.Params<SafetyPatchParams>()!.Examples);
    }

    [Fact]
    public void A_plan_splits_at_training_into_what_a_shared_fine_tune_ran_and_the_steps_after_it()
    {
        var plan = Parse("""{"strategy": ["safety_patch", "projected_gradients", "merge", "frozen_layers"]}""");
        Assert.Equal(["merge", "safety_patch"], plan.AfterTraining.Select(s => s.Strategy.Name));
        var upToTraining = plan.UpToTraining();
        Assert.Equal(["frozen_layers", "projected_gradients"], upToTraining.RunOrder.Select(s => s.Strategy.Name));
        Assert.Empty(upToTraining.AfterTraining);
        Assert.Equal(upToTraining, upToTraining.UpToTraining());
        Assert.True(Parse("""{"strategy": ["antidote", "merge"]}""").UpToTraining().IsNone);
    }
}
