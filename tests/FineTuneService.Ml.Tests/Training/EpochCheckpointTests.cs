using FineTuneService.Datasets;
using FineTuneService.Ml.Training;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Tests.Training;

[Collection(TorchGlobalStateCollection.Name)]
public sealed class EpochCheckpointTests : IDisposable
{
    private readonly string root = Path.Combine(Path.GetTempPath(), $"fts-epochs-{Guid.NewGuid():N}");

    // 10 rows, batch 2, accumulation 2: 3 steps per epoch, 12 in all.
    private static SftTrainerOptions Options(string directory) => TrainerTestData.Options(directory) with
    {
        Epochs = 4,
        BatchSize = 2,
        GradientAccumulationSteps = 2,
        CheckpointEveryEpoch = true,
    };

    [Fact]
    public void Every_epoch_ends_with_a_checkpoint_validated_at_its_step_with_token_accuracies()
    {
        var examples = TrainerTestData.ReverseTask(10);
        var validation = TrainerTestData.ReverseTask(4, seed: 3);
        var checkpoints = new List<CheckpointWritten>();
        var evaluations = new List<EvaluationResult>();
        var progress = new List<TrainingProgress>();
        using var lm = TrainerTestData.Decoder();
        var observer = new DelegateObserver(progress.Add, evaluations.Add, checkpoints.Add);

        var result = new SftTrainer(lm, Options(root), observer: observer).Train(examples, validation);

        Assert.Equal([3, 6, 9, 12], checkpoints.Select(c => c.Step));
        Assert.All(checkpoints, c => Assert.True(c.EndOfEpoch));
        // Validated at the checkpoint's own step, once (the run's closing validation is the last epoch's).
        Assert.Equal([3, 6, 9, 12], evaluations.Select(e => e.Step));
        Assert.Equal(evaluations.Select(e => (double?)e.ValidationLoss), checkpoints.Select(c => c.ValidationLoss));
        Assert.Equal(evaluations.Select(e => (double?)e.ValidationTokenAccuracy), checkpoints.Select(c => c.ValidationTokenAccuracy));
        Assert.All(progress, p => Assert.InRange(p.TrainTokenAccuracy, 0, 1));
        Assert.Equal(progress.Select(p => p.TrainTokenAccuracy), result.Metrics.Select(m => m.TrainTokenAccuracy));
        Assert.Equal(result.TrainLosses, result.Metrics.Select(m => m.TrainLoss));
        Assert.Equal([3, 6, 9, 12], result.Metrics.Where(m => m.ValidationLoss is not null).Select(m => m.Step));

        // The last validation's accuracy is the share of answer tokens the trained model predicts (argmax) right.
        Assert.Equal(ArgmaxAccuracy(lm, validation), evaluations[^1].ValidationTokenAccuracy, 1e-9);
    }

    private sealed class FixedClock(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }

    [Fact]
    public void Checkpoints_are_dated_by_the_trainers_clock()
    {
        var now = new DateTimeOffset(2031, 5, 6, 7, 8, 9, TimeSpan.Zero);
        var checkpoints = new List<CheckpointWritten>();
        using var lm = TrainerTestData.Decoder();

        new SftTrainer(lm, Options(root) with { Epochs = 1, Clock = new FixedClock(now) },
            observer: new DelegateObserver(checkpoint: checkpoints.Add)).Train(TrainerTestData.ReverseTask(10));

        Assert.Equal(now, TrainingCheckpoint.ReadState(Assert.Single(checkpoints).Directory).CreatedAt);
    }

    [Fact]
    public void A_resumed_run_reports_the_metrics_history_of_the_uninterrupted_one()
    {
        var examples = TrainerTestData.ReverseTask(10);
        var validation = TrainerTestData.ReverseTask(4, seed: 3);
        TrainingResult uninterrupted;
        using (var lm = TrainerTestData.Decoder())
            uninterrupted = new SftTrainer(lm, Options(Path.Combine(root, "a"))).Train(examples, validation);

        // Killed after step 7: the last checkpoint is the end of epoch 2 (step 6).
        var checkpoints = new List<CheckpointWritten>();
        using (var lm = TrainerTestData.Decoder())
        using (var kill = new CancellationTokenSource())
        {
            var observer = new DelegateObserver(progress: p => { if (p.Step == 7) kill.Cancel(); }, checkpoint: checkpoints.Add);
            new SftTrainer(lm, Options(Path.Combine(root, "b")), observer: observer).Train(examples, validation, cancellationToken: kill.Token);
        }
        Assert.Equal(6, checkpoints[^1].Step);

        using (var lm = TrainerTestData.Decoder())
        {
            var resumed = new SftTrainer(lm, Options(Path.Combine(root, "b"))).Train(examples, validation, resumeFrom: checkpoints[^1].Directory);
            Assert.Equal(uninterrupted.Metrics, resumed.Metrics);
        }
    }

    /// <summary>Computed here from the model's logits, independently of the trainer's bookkeeping.</summary>
    private static double ArgmaxAccuracy(TorchSharp.torch.nn.Module<Tensor, Tensor> model, IReadOnlyList<TokenizedExample> examples)
    {
        model.eval();
        long correct = 0, total = 0;
        using var noGrad = no_grad();
        foreach (var example in examples)
        {
            using var scope = NewDisposeScope();
            var logits = model.forward(tensor(example.InputIds.Select(i => (long)i).ToArray(), [1, example.Length]));
            var predicted = logits.argmax(-1).data<long>().ToArray();
            for (var t = 0; t + 1 < example.Length; t++)
            {
                if (!example.LossMask[t + 1]) continue;
                total++;
                if (predicted[t] == example.InputIds[t + 1]) correct++;
            }
        }
        return (double)correct / total;
    }

    public void Dispose()
    {
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
    }
}
