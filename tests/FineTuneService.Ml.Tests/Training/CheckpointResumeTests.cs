using FineTuneService.Ml.Lora;
using FineTuneService.Ml.Training;

namespace FineTuneService.Ml.Tests.Training;

[Collection(TorchGlobalStateCollection.Name)]
public sealed class CheckpointResumeTests : IDisposable
{
    private readonly string root = Path.Combine(Path.GetTempPath(), $"fts-trainer-{Guid.NewGuid():N}");

    private static SftTrainerOptions Options(string directory) => TrainerTestData.Options(directory) with
    {
        Epochs = 4,
        BatchSize = 2,
        GradientAccumulationSteps = 2,
        WeightDecay = 0.05,
        WarmupSteps = 3,
    };

    [Theory]
    [InlineData("decoder")]
    [InlineData("lora")]
    public void Resuming_after_a_kill_continues_the_uninterrupted_loss_curve(string model)
    {
        var examples = TrainerTestData.ReverseTask(10);
        TrainingResult uninterrupted;
        Dictionary<string, float[]> uninterruptedWeights;
        using (var lm = TrainerTestData.Model(model))
        {
            uninterrupted = new SftTrainer(lm, Options(Path.Combine(root, "a"))).Train(examples);
            uninterruptedWeights = TrainerTestData.Snapshot(lm);
        }

        // Periodic checkpoints every 4 steps; the "process" dies after step 6, so the run resumes from step 4.
        var checkpoints = new List<CheckpointWritten>();
        using (var lm = TrainerTestData.Model(model))
        using (var kill = new CancellationTokenSource())
        {
            var observer = new DelegateObserver(progress: p => { if (p.Step == 6) kill.Cancel(); }, checkpoint: checkpoints.Add);
            var killed = new SftTrainer(lm, Options(Path.Combine(root, "b")) with { CheckpointEverySteps = 4 }, observer: observer)
                .Train(examples, cancellationToken: kill.Token);
            Assert.Equal(TrainingOutcome.Cancelled, killed.Outcome);
        }
        Assert.Equal([4], checkpoints.Select(c => c.Step));

        using (var lm = TrainerTestData.Model(model))
        {
            var resumed = new SftTrainer(lm, Options(Path.Combine(root, "b"))).Train(examples, resumeFrom: checkpoints[0].Directory);

            Assert.Equal(TrainingOutcome.Completed, resumed.Outcome);
            Assert.Equal(uninterrupted.StepsDone, resumed.StepsDone);
            Assert.Equal(uninterrupted.TrainLosses.Skip(4), resumed.TrainLosses);
            Assert.Equal(uninterrupted.TokensSeen, resumed.TokensSeen);
            var weights = TrainerTestData.Snapshot(lm);
            foreach (var (name, values) in uninterruptedWeights) Assert.Equal(values, weights[name]);
        }
    }

    [Theory]
    [InlineData("decoder")]
    [InlineData("lora")]
    public void Pause_writes_a_checkpoint_then_stops_and_the_run_resumes_from_it(string model)
    {
        var examples = TrainerTestData.ReverseTask(10);
        IReadOnlyList<double> uninterrupted;
        using (var lm = TrainerTestData.Model(model))
            uninterrupted = new SftTrainer(lm, Options(Path.Combine(root, "a"))).Train(examples).TrainLosses;

        TrainingResult paused;
        using (var lm = TrainerTestData.Model(model))
        using (var pause = new CancellationTokenSource())
        {
            var observer = new DelegateObserver(progress: p => { if (p.Step == 7) pause.Cancel(); });
            paused = new SftTrainer(lm, Options(Path.Combine(root, "b")), observer: observer).Train(examples, pauseToken: pause.Token);
        }
        Assert.Equal(TrainingOutcome.Paused, paused.Outcome);
        Assert.Equal(7, paused.StepsDone);
        Assert.NotNull(paused.LastCheckpoint);
        var state = TrainingCheckpoint.ReadState(paused.LastCheckpoint!);
        Assert.Equal(7, state.Step);
        Assert.Equal(uninterrupted.Take(7), state.TrainLosses);
        Assert.Equal("tiny-llama@seed7", state.BaseModel);
        // Only what training changes is stored: the LoRA factors, or every weight under full fine-tuning.
        Assert.Equal(model == "lora", state.TrainableParameters.All(LoraAdapter.IsLoraKey));

        using (var lm = TrainerTestData.Model(model))
        {
            var resumed = new SftTrainer(lm, Options(Path.Combine(root, "b"))).Train(examples, resumeFrom: paused.LastCheckpoint);
            Assert.Equal(uninterrupted.Skip(7), resumed.TrainLosses);
        }
    }

    [Fact]
    public void Resuming_with_different_data_is_refused()
    {
        using var pause = new CancellationTokenSource();
        pause.Cancel();
        string directory;
        using (var lm = TrainerTestData.Decoder())
            directory = new SftTrainer(lm, Options(root)).Train(TrainerTestData.ReverseTask(10), pauseToken: pause.Token).LastCheckpoint!;

        using var other = TrainerTestData.Decoder();
        var error = Assert.Throws<InvalidOperationException>(() =>
            new SftTrainer(other, Options(root)).Train(TrainerTestData.ReverseTask(10, seed: 2), resumeFrom: directory));
        Assert.Contains("training data", error.Message);
    }

    public void Dispose()
    {
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
    }
}
