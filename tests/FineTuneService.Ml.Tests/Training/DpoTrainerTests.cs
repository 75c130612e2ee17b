using FineTuneService.Datasets;
using FineTuneService.Datasets.Sft;
using FineTuneService.Ml.Training;
using FineTuneService.Ml.Training.Preference;
using TorchSharp;

namespace FineTuneService.Ml.Tests.Training;

/// <summary>DPO through the shared <see cref="SftTrainer"/>: the objective seam, metrics, resume, strategy hooks, leaks.</summary>
[Collection(TorchGlobalStateCollection.Name)]
public sealed class DpoTrainerTests : IDisposable
{
    private readonly string root = Path.Combine(Path.GetTempPath(), $"fts-dpo-{Guid.NewGuid():N}");

    /// <summary>The reverse task's answer is preferred over one token repeated as long (a pattern that carries to held-back pairs).</summary>
    private static List<TokenizedPair> Pairs(int count, int seed = 1) =>
    [
        .. TrainerTestData.ReverseTask(count, seed).Select(chosen =>
        {
            var answerStart = Array.IndexOf(chosen.LossMask, true);
            var answerLength = chosen.InputIds.Length - 1 - answerStart;
            int[] rejectedIds = [.. chosen.InputIds[..answerStart], .. Enumerable.Repeat(TrainerTestData.Vocabulary - 1, answerLength), chosen.InputIds[^1]];
            return new TokenizedPair(chosen, new TokenizedExample(rejectedIds, chosen.LossMask));
        }),
    ];

    private static SftTrainerOptions Options(string? directory = null) => TrainerTestData.Options(directory) with
    {
        Epochs = 6,
        BatchSize = 2,
        GradientAccumulationSteps = 2,
        WarmupSteps = 2,
        EvalEverySteps = 3,
    };

    [Fact]
    public void Dpo_raises_the_held_back_reward_accuracy_and_reports_margin_and_accuracy_every_step()
    {
        var progress = new List<TrainingProgress>();
        var evaluations = new List<EvaluationResult>();
        using var model = TrainerTestData.Decoder();
        var result = new SftTrainer(model, Options(), observer: new DelegateObserver(progress.Add, evaluations.Add))
            .TrainPreference(Pairs(12), Pairs(6, seed: 9), beta: 0.5);

        Assert.Equal(TrainingOutcome.Completed, result.Outcome);
        Assert.Equal(18, result.StepsDone); // 12 pairs, 2 a micro-batch, 2 micro-batches a step: 3 steps an epoch
        Assert.Equal(Math.Log(2), result.TrainLosses[0], 3); // the policy starts as its reference
        Assert.All(progress, p => Assert.NotNull(p.RewardMargin));
        Assert.All(progress, p => Assert.InRange(p.RewardAccuracy!.Value, 0, 1));
        Assert.True(result.TrainLosses[^1] < result.TrainLosses[0] - 0.1, $"loss {result.TrainLosses[0]} -> {result.TrainLosses[^1]}");
        Assert.True(progress[^1].RewardMargin > 0, $"margin {progress[^1].RewardMargin}");
        Assert.True(evaluations[^1].RewardAccuracy > 0.5, $"held-back reward accuracy {evaluations[^1].RewardAccuracy}");
        Assert.Equal(result.StepsDone, result.Metrics.Count);
        Assert.All(result.Metrics, m => Assert.NotNull(m.RewardAccuracy));
        Assert.Equal(evaluations[^1].RewardAccuracy, result.Metrics[^1].ValidationRewardAccuracy);
    }

    [Fact]
    public void Supervised_training_reports_no_preference_figures() =>
        Assert.All(new SftTrainer(TrainerTestData.Decoder(), TrainerTestData.Options()).Train(TrainerTestData.ReverseTask(4)).Metrics,
            m => Assert.Null(m.RewardMargin));

    [Theory]
    [InlineData("decoder")]
    [InlineData("lora")]
    public void Resuming_a_dpo_run_continues_the_uninterrupted_curve_from_the_stored_reference(string kind)
    {
        var pairs = Pairs(8);
        TrainingResult uninterrupted;
        using (var model = TrainerTestData.Model(kind))
            uninterrupted = new SftTrainer(model, Options(Path.Combine(root, "a")) with { EvalEverySteps = 0 }).TrainPreference(pairs, beta: 0.5);

        var checkpoints = new List<CheckpointWritten>();
        using (var model = TrainerTestData.Model(kind))
        using (var kill = new CancellationTokenSource())
        {
            var observer = new DelegateObserver(progress: p => { if (p.Step == 5) kill.Cancel(); }, checkpoint: checkpoints.Add);
            new SftTrainer(model, Options(Path.Combine(root, "b")) with { EvalEverySteps = 0, CheckpointEverySteps = 4 }, observer: observer)
                .TrainPreference(pairs, beta: 0.5, cancellationToken: kill.Token);
        }
        Assert.NotNull(checkpoints[0].RewardAccuracy);
        var state = TrainingCheckpoint.ReadState(checkpoints[0].Directory);
        Assert.Equal(2 * pairs.Count, state.ReferenceLogProbs.Count);

        // After the restore the model holds step-4 weights; a reference recomputed from them would bend the curve.
        using (var model = TrainerTestData.Model(kind))
        {
            var resumed = new SftTrainer(model, Options(Path.Combine(root, "b")) with { EvalEverySteps = 0 })
                .TrainPreference(pairs, beta: 0.5, resumeFrom: checkpoints[0].Directory);
            Assert.Equal(uninterrupted.TrainLosses.Skip(4), resumed.TrainLosses);
            Assert.Equal(uninterrupted.Metrics.Select(m => m.RewardMargin), resumed.Metrics.Select(m => m.RewardMargin));
        }
    }

    [Fact]
    public void Strategy_hooks_see_dpo_gradients_and_frozen_weights_stay_put()
    {
        var gradientSteps = new List<int>();
        using var model = TrainerTestData.Decoder();
        var frozen = model.named_parameters().First(p => p.name.Contains("layers.0")).parameter;
        frozen.requires_grad = false;
        var before = frozen.detach().clone().data<float>().ToArray();
        var strategy = new DelegateStrategy(onGradients: (context, step) =>
        {
            Assert.Contains(context.TrainableParameters, p => p.Parameter.grad is not null);
            gradientSteps.Add(step);
        });

        var result = new SftTrainer(model, Options() with { Epochs = 2 }, [strategy]).TrainPreference(Pairs(8), beta: 0.5);

        Assert.Equal(Enumerable.Range(1, result.StepsDone), gradientSteps);
        Assert.Equal(before, frozen.detach().data<float>().ToArray());
    }

    [Fact]
    public void Live_tensor_count_does_not_grow_over_dpo_steps()
    {
        using var model = TrainerTestData.Decoder();
        var live = new Dictionary<int, long>();
        var observer = new DelegateObserver(progress: p => live[p.Step] = DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        var options = TrainerTestData.Options() with { MaxSteps = 120, Epochs = 1000, BatchSize = 2, EvalEverySteps = 30 };

        new SftTrainer(model, options, observer: observer).TrainPreference(Pairs(6), Pairs(2, seed: 5));

        Assert.True(live[120] <= live[20], $"live tensors grew from {live[20]} at step 20 to {live[120]} at step 120");
    }

    [Fact]
    public void Packing_is_refused_for_pairs() =>
        Assert.Throws<ArgumentException>(() =>
            new SftTrainer(TrainerTestData.Decoder(), TrainerTestData.Options() with { Packing = true }).TrainPreference(Pairs(2)));

    public void Dispose()
    {
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
    }
}
