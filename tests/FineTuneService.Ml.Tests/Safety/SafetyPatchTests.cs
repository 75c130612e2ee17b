using FineTuneService.Contracts.Safety;
using FineTuneService.Datasets;
using FineTuneService.Ml.Models;
using FineTuneService.Ml.Safety.Strategies;
using FineTuneService.Ml.Safety.Strategies.Merge;
using FineTuneService.Ml.Safety.Strategies.ProjectedGradients;
using FineTuneService.Ml.Safety.Strategies.SafetyPatch;
using FineTuneService.Ml.Tests.Models;
using FineTuneService.Ml.Tests.Training;
using FineTuneService.Ml.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Tests.Safety;

/// <summary>The safety patch and the TIES/PCB merges as post-training steps of a real (tiny) decoder's fine-tune.</summary>
[Collection(TorchGlobalStateCollection.Name)]
public sealed class SafetyPatchTests
{
    private static DecoderLM Model() =>
        DecoderLM.CreateRandom(TinyModels.Llama() with { NumHiddenLayers = 2, VocabSize = TrainerTestData.Vocabulary }, seed: 9);

    private static readonly IReadOnlyList<TokenizedExample> Task = TrainerTestData.ReverseTask(8, seed: 1);
    private static readonly IReadOnlyList<TokenizedExample> Refusals = TrainerTestData.ReverseTask(8, seed: 2);
    private static readonly EncodedSafetyData Data = new(Refusals: Refusals, HarmfulAnswers: TrainerTestData.ReverseTask(4, seed: 3));

    private static SftTrainerOptions Options => TrainerTestData.Options() with { MaxSteps = 3 };

    [Fact]
    public void The_patch_lowers_its_refusal_loss_and_moves_each_weight_only_inside_its_safety_subspace()
    {
        using var scope = NewDisposeScope();
        using var model = Model();
        var parameters = model.named_parameters().Select(p => (p.name, p.parameter)).ToArray();
        var before = parameters.ToDictionary(p => p.name, p => p.parameter.detach().clone());
        Tensor Loss(TokenizedExample e) => SafetyLoss.NextTokenLoss(model, e, 64, CPU);

        var options = new SafetyPatchParams(Examples: 2, Steps: 5, LearningRate: 0.5, Rank: 3, SafetySamples: 4);
        var report = SafetyLoss.InEvalMode(model, () => new SubspacePatcher(options, seed: 1)
            .Patch(parameters, i => Loss(Refusals[i]), 4, i => Loss(Refusals[i]), 2));

        Assert.True(report.LossAfter < report.LossBefore, $"patch loss {report.LossBefore} -> {report.LossAfter}");
        Assert.InRange(report.MeanRank, 1, 3);
        // The same subspaces (same samples, same seed, same starting weights): every weight's change lies inside its own.
        using var reference = Model();
        var referenceParameters = reference.named_parameters().Select(p => (p.name, p.parameter)).ToArray();
        var perSample = SafetyLoss.InEvalMode(reference, () => SafetyGradients.PerSample(referenceParameters.Select(p => p.parameter).ToArray(),
            i => SafetyLoss.NextTokenLoss(reference, Refusals[i], 64, CPU), 4));
        var generator = new Generator(1);
        var moved = 0;
        for (var i = 0; i < parameters.Length; i++)
        {
            using var subspace = SafetySubspace.Estimate(perSample.Select(s => s[i]).ToArray(), 3, twoSided: false, generator);
            var change = parameters[i].parameter.detach() - before[parameters[i].name];
            if (change.norm().item<float>() == 0) continue;
            moved++;
            var outside = (change - subspace.Project(change)).norm().item<float>();
            Assert.True(outside <= 1e-4f * (1 + change.norm().item<float>()), $"{parameters[i].name}: {outside} of the change is outside the subspace");
        }
        Assert.True(moved > parameters.Length / 2);
    }

    [Fact]
    public void Safety_patch_and_a_ties_merge_are_post_training_stages_in_run_order()
    {
        using var scope = NewDisposeScope();
        using var model = Model();
        var hooks = TestPlans.Strategies("""
            {"strategy": ["safety_patch", "merge"],
             "params": {"merge": {"method": "ties", "density": 0.5}, "safety_patch": {"examples": 2, "steps": 3, "safety_samples": 4}}}
            """, Data);
        Assert.Equal([typeof(MergeTrainingStrategy), typeof(SafetyPatchTrainingStrategy)], hooks.Select(h => h.GetType()));
        var stages = new List<string>();
        var result = new SftTrainer(model, Options, hooks, new StageLog(stages)).Train(Task);

        Assert.Equal(TrainingOutcome.Completed, result.Outcome);
        Assert.Equal([TrainingStages.Training, "merge", "safety_patch"], stages);
        var patch = ((SafetyPatchTrainingStrategy)hooks[1]).Report!;
        Assert.Equal(3, patch.Steps);
        Assert.True(patch.LossAfter <= patch.LossBefore);
        Assert.All(model.parameters(), p => Assert.True(p.isfinite().all().item<bool>()));
    }

    [Theory]
    [InlineData("ties")]
    [InlineData("pcb")]
    public void A_sparse_merge_resets_most_entries_of_the_update_to_the_base(string method)
    {
        using var scope = NewDisposeScope();
        using var model = Model();
        var initial = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
        var hooks = TestPlans.Strategies($$$$"""{"strategy": "merge", "params": {"merge": {"method": "{{{{method}}}}"}}}""", Data);
        new SftTrainer(model, Options, hooks).Train(Task);

        const string probe = "model.layers.1.mlp.up_proj.weight";
        var weight = model.named_parameters().Single(p => p.name == probe).parameter.detach();
        var atBase = weight.eq(initial[probe]).to_type(ScalarType.Float32).mean().item<float>();
        // ties keeps 20% of the entries, pcb 10%, and lambda 1 keeps them at their fine-tuned values.
        Assert.InRange(atBase, method == "ties" ? 0.79f : 0.89f, 0.91f);
    }

    [Fact]
    public void Ties_with_a_lora_adapter_is_a_configuration_error()
    {
        using var scope = NewDisposeScope();
        using var model = Model();
        Ml.Lora.LoraAdapter.Inject(model, new Ml.Lora.LoraConfig { Rank = 2, Alpha = 4, Dropout = 0, TargetModules = ["q_proj"] }, seed: 1);
        var hooks = SafetyTrainingStrategies.Create(SafetyPlan.Of(new MergeParams(Method: MergeMethods.Ties)), Data);
        Assert.Throws<SafetyStrategyConfigurationException>(() => new SftTrainer(model, Options, hooks).Train(Task));
    }

    private sealed class StageLog(List<string> stages) : ITrainingObserver
    {
        public void OnStage(string stage) => stages.Add(stage);
    }
}
