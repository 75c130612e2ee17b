using FineTuneService.Datasets;
using FineTuneService.Ml.Models;
using FineTuneService.Ml.Safety.Strategies;
using FineTuneService.Contracts.Safety;
using FineTuneService.Ml.Safety.Strategies.Antidote;
using FineTuneService.Ml.Safety.Strategies.FrozenLayers;
using FineTuneService.Ml.Safety.Strategies.Merge;
using FineTuneService.Ml.Safety.Strategies.ProjectedGradients;
using FineTuneService.Ml.Tests.Models;
using FineTuneService.Ml.Tests.Training;
using FineTuneService.Ml.Training;
using FineTuneService.Research.Benchmarks;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Tests.Safety;

// SftTrainer seeds torch's process-wide generator, so these must not run beside other torch tests.
/// <summary>The strategies wired into <see cref="SftTrainer"/> on a real (tiny) decoder, full fine-tune.</summary>
[Collection(Training.TorchGlobalStateCollection.Name)]
public sealed class SafetyTrainingStrategiesTests
{
    private static DecoderLM Model() =>
        DecoderLM.CreateRandom(TinyModels.Llama() with { NumHiddenLayers = 4, VocabSize = TrainerTestData.Vocabulary }, seed: 5);

    private static readonly IReadOnlyList<TokenizedExample> Task = TrainerTestData.ReverseTask(8, seed: 1);
    private static readonly EncodedSafetyData Resources = new(
        Refusals: TrainerTestData.ReverseTask(6, seed: 2),
        HarmfulAnswers: TrainerTestData.ReverseTask(6, seed: 3));

    private static SftTrainerOptions Options => TrainerTestData.Options() with { MaxSteps = 3 };

    private static Dictionary<string, Tensor> Weights(DecoderLM model) =>
        model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());

    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    /// <summary>Clones the gradients right before the hook under test runs.</summary>
    private sealed class GradientProbe : ITrainingStrategy
    {
        public Dictionary<string, Tensor> Before { get; } = [];

        public void OnGradients(TrainingContext context, int step)
        {
            foreach (var t in Before.Values) t.Dispose();
            Before.Clear();
            foreach (var p in context.TrainableParameters) Before[p.Name] = p.Parameter.grad!.clone().DetachFromDisposeScope();
        }
    }

    /// <summary>Checks the property after the hook under test ran.</summary>
    private sealed class ConflictCheck(GradientProbe probe, ProjectedGradientsTrainingStrategy hook) : ITrainingStrategy
    {
        public int Conflicts { get; private set; }

        public void OnGradients(TrainingContext context, int step)
        {
            foreach (var p in context.TrainableParameters)
            {
                var s = hook.Subspaces[p.Name].SafetyGradient;
                if (GradientSurgery.Inner(probe.Before[p.Name], s) >= 0) continue;
                Conflicts++;
                Assert.True(GradientSurgery.Inner(p.Parameter.grad!, s) >= -1e-6, $"step {step}, {p.Name}: update still conflicts");
            }
        }
    }

    /// <summary>Records the stages the trainer reports and the weights at each, for the safety evaluation's view.</summary>
    private sealed class StageRecorder(DecoderLM model) : ITrainingObserver
    {
        public List<(string Stage, Dictionary<string, Tensor> Weights)> Stages { get; } = [];

        public void OnStage(string stage) => Stages.Add((stage, model.named_parameters()
            .ToDictionary(p => p.name, p => p.parameter.detach().clone().DetachFromDisposeScope())));
    }

    [Fact]
    public void The_trainer_reports_the_trained_weights_and_each_post_step_that_changes_them_in_order()
    {
        using var scope = NewDisposeScope();
        using var model = Model();
        var hooks = TestPlans.Strategies("""
            {"strategy": ["frozen_layers", "antidote", "merge"],
             "params": {"frozen_layers": {"first_layer": 1, "last_layer": 2}, "merge": {"lambda": 0.5}}}
            """, Resources);
        var recorder = new StageRecorder(model);

        var result = new SftTrainer(model, Options, hooks, recorder).Train(Task);

        Assert.Equal(TrainingOutcome.Completed, result.Outcome);
        // frozen_layers changes nothing after training, so it is no stage; antidote and merge are, in order.
        Assert.Equal([TrainingStages.Training, "antidote", "merge"], recorder.Stages.Select(s => s.Stage));
        // Each stage saw different weights, and the last one is what the run ends with.
        Assert.Contains(recorder.Stages[0].Weights, w => !Same(w.Value, recorder.Stages[1].Weights[w.Key]));
        Assert.Contains(recorder.Stages[1].Weights, w => !Same(w.Value, recorder.Stages[2].Weights[w.Key]));
        var final = Weights(model);
        Assert.All(recorder.Stages[2].Weights, w => Assert.True(Same(w.Value, final[w.Key]), w.Key));
    }

    [Fact]
    public void Frozen_layers_projected_gradients_and_antidote_compose_in_one_run()
    {
        using var scope = NewDisposeScope();
        using var model = Model();
        var initial = Weights(model);
        var hooks = TestPlans.Strategies("""
            {"strategy": ["antidote", "projected_gradients", "frozen_layers"],
             "params": {"frozen_layers": {"first_layer": 1, "last_layer": 2},
                        "projected_gradients": {"variant": "pcgrad", "refresh_every": 2, "safety_samples": 3}}}
            """, Resources);
        Assert.Equal([typeof(FrozenLayersTrainingStrategy), typeof(ProjectedGradientsTrainingStrategy), typeof(AntidoteTrainingStrategy)], hooks.Select(h => h.GetType()));
        var probe = new GradientProbe();
        var check = new ConflictCheck(probe, (ProjectedGradientsTrainingStrategy)hooks[1]);

        var result = new SftTrainer(model, Options, [hooks[0], probe, hooks[1], check, hooks[2]]).Train(Task);

        Assert.Equal(TrainingOutcome.Completed, result.Outcome);
        var final = Weights(model);
        foreach (var (name, before) in initial)
        {
            var frozen = LayerParameterNames.LayerIndex(name) is 1 or 2 && LayerParameterNames.IsAttentionOrMlp(name);
            Assert.Equal(frozen, Same(before, final[name]));
        }
        Assert.True(check.Conflicts > 0, "the safety set is built to conflict with the task at least once");

        // Antidote reset, per row, exactly floor(0.1 * d_in) entries of every trainable decoder matrix to the base value.
        var antidote = ((AntidoteTrainingStrategy)hooks[2]).Report!;
        var matrices = final.Where(w => w.Value.dim() == 2 && LayerParameterNames.LayerIndex(w.Key) is 0 or 3).ToArray();
        Assert.Equal(matrices.Select(w => w.Key).Order(), antidote.PrunedPerWeight.Keys.Order());
        foreach (var (name, weight) in matrices)
        {
            var perRow = WandaPruning.PrunedPerRow(weight.shape[1], 0.1);
            Assert.Equal(perRow * weight.shape[0], antidote.PrunedPerWeight[name]);
            Assert.True(weight.eq(initial[name]).sum().item<long>() >= perRow * weight.shape[0]);
        }
        foreach (var t in probe.Before.Values) t.Dispose();
    }

    [Theory]
    [InlineData(ProjectedGradientsVariants.Config)]
    [InlineData(ProjectedGradientsVariants.Subspace)]
    public void Projected_gradient_variants_train_the_real_decoder(string variant)
    {
        using var scope = NewDisposeScope();
        using var model = Model();
        var hook = (ProjectedGradientsTrainingStrategy)TestPlans.Strategies(
            """{"strategy": "projected_gradients", "params": {"projected_gradients": {"variant": "VARIANT", "rank": 2, "safety_samples": 3}}}""".Replace("VARIANT", variant), Resources)[0];
        var probe = new GradientProbe();
        var result = new SftTrainer(model, Options, [probe, hook]).Train(Task);
        Assert.Equal(TrainingOutcome.Completed, result.Outcome);
        Assert.All(result.TrainLosses, l => Assert.True(double.IsFinite(l)));
        Assert.NotNull(hook.LastReport);
        Assert.Equal(model.parameters().Count(), hook.LastReport!.Parameters);
        if (variant == ProjectedGradientsVariants.Subspace)
        {
            // The last step's edit: no part of a conflicting update is left in that weight's safety subspace.
            foreach (var (name, parameter) in model.named_parameters())
            {
                var subspace = hook.Subspaces[name];
                if (GradientSurgery.Inner(probe.Before[name], subspace.SafetyGradient) < 0)
                    Assert.True(subspace.Project(parameter.grad!).norm().item<float>() < 1e-4);
            }
        }
        hook.Dispose();
    }

    [Fact]
    public void Merge_with_lambda_zero_restores_the_base_and_lambda_one_keeps_the_fine_tune()
    {
        using var scope = NewDisposeScope();
        Dictionary<string, Tensor> Train(string? merge)
        {
            var model = Model();
            var hooks = merge is null ? [] : TestPlans.Strategies(merge, Resources);
            new SftTrainer(model, Options, hooks).Train(Task);
            return Weights(model);
        }

        var baseline = Weights(Model());
        var plain = Train(null);
        var zero = Train("""{"strategy": "merge", "params": {"merge": {"lambda": 0}}}""");
        var one = Train("""{"strategy": "merge", "params": {"merge": {"lambda": 1}}}""");
        foreach (var name in baseline.Keys)
        {
            Assert.True(Same(baseline[name], zero[name]), $"lambda 0: {name}");
            Assert.True(Same(plain[name], one[name]), $"lambda 1: {name}");
        }
        Assert.Contains(baseline.Keys, name => !Same(baseline[name], plain[name]));
    }

    [Fact]
    public void SafeMerge_threshold_selects_the_merged_layers()
    {
        using var scope = NewDisposeScope();
        (Dictionary<string, Tensor> Weights, SafeMergeTrainingStrategy Hook) Train(double threshold)
        {
            var model = Model();
            var hook = (SafeMergeTrainingStrategy)TestPlans.Strategies(
                """{"strategy": "safemerge", "params": {"safemerge": {"lambda": 0, "threshold": THRESHOLD, "rank": 2, "safety_samples": 3}}}""".Replace("THRESHOLD", threshold.ToString(System.Globalization.CultureInfo.InvariantCulture)), Resources)[0];
            new SftTrainer(model, Options, [hook]).Train(Task);
            return (Weights(model), hook);
        }

        var baseline = Weights(Model());
        var (all, allHook) = Train(0.0);
        var (none, noneHook) = Train(1.0);
        Assert.All(allHook.Decisions, d => Assert.True(d.Merged));
        Assert.All(noneHook.Decisions, d => Assert.True(!d.Merged || d.Similarity >= 1 - 1e-9));
        // Decisions cover the decoder matrices; merged ones (lambda 0) are back at base, the rest keep the fine-tune.
        Assert.Equal(4 * 7, allHook.Decisions.Count);
        foreach (var d in allHook.Decisions) Assert.True(Same(baseline[d.Weight], all[d.Weight]), d.Weight);
        foreach (var d in noneHook.Decisions.Where(d => !d.Merged)) Assert.False(Same(baseline[d.Weight], none[d.Weight]), d.Weight);
        Assert.All(allHook.Decisions, d => Assert.InRange(d.Similarity, 0, 1 + 1e-9));
    }

    [Fact]
    public void Missing_safety_data_and_missing_layer_ranges_are_configuration_errors()
    {
        Assert.Throws<SafetyStrategyConfigurationException>(() => TestPlans.Strategies("""{"strategy": "antidote"}""", new EncodedSafetyData()));
        var error = Assert.Throws<SafetyStrategyConfigurationException>(() => TestPlans.Strategies("""{"strategy": "frozen_layers"}""", new EncodedSafetyData()));
        Assert.Contains("first_layer", error.Message);
        Assert.Empty(TestPlans.Strategies("""{"strategy": "none"}""", new EncodedSafetyData()));
    }

    /// <summary>Every post-training strategy alone, and a plan whose first phase freezes and projects.</summary>
    public static TheoryData<string> PlansWithPostTrainingSteps => new(SafetyStrategies.Registry.All
        .Where(s => s.Phase == SafetyPhase.AfterTraining)
        .Select(s => $$"""{"strategy": ["{{s.Name}}"]}""")
        .Append("""{"strategy": ["frozen_layers", "projected_gradients", "antidote", "merge"], "params": {"frozen_layers": {"first_layer": 1, "last_layer": 2}}}"""));

    [Theory]
    [MemberData(nameof(PlansWithPostTrainingSteps))]
    public void Finishing_from_a_shared_first_phase_gives_the_weights_of_training_with_the_whole_plan(string json)
    {
        using var scope = NewDisposeScope();
        var plan = TestPlans.Plan(json);
        using var whole = Model();
        new SftTrainer(whole, Options, SafetyTrainingStrategies.Create(plan, Resources)).Train(Task);
        using var firstPhase = Model();
        new SftTrainer(firstPhase, Options, SafetyTrainingStrategies.Create(plan.UpToTraining(), Resources)).Train(Task);

        using var finished = Model();
        var result = new SftTrainer(finished, Options, SafetyTrainingStrategies.Create(plan, Resources)).FinishFrom(Task, Weights(firstPhase));

        Assert.Equal(TrainingOutcome.Completed, result.Outcome);
        Assert.Equal(3, result.StepsDone);
        var expected = Weights(whole);
        var trained = Weights(firstPhase);
        var weights = Weights(finished);
        Assert.All(weights, w => Assert.True(Same(expected[w.Key], w.Value), $"{w.Key} differs from the uninterrupted run"));
        // Not vacuous: the post-training steps moved the weights away from the shared fine-tune.
        Assert.Contains(weights, w => !Same(trained[w.Key], w.Value));
    }

    [Fact]
    public void Finishing_refuses_weights_that_do_not_fit_the_model()
    {
        using var scope = NewDisposeScope();
        using var model = Model();
        var weights = Weights(model);
        weights.Remove(weights.Keys.First());

        var error = Assert.Throws<ArgumentException>(() => new SftTrainer(model, Options).FinishFrom(Task, weights));

        Assert.Contains("no tensor", error.Message);
    }
}
