using FineTuneService.Research.Benchmarks;

namespace FineTuneService.Ml.Tests.Safety;

/// <summary>The DPO benchmark end to end on a tiny random model and the shipped HH-RLHF subset: figures, resuming, the tables.</summary>
[Collection(Training.TorchGlobalStateCollection.Name)]
public sealed class DpoBenchmarkTests : IDisposable
{
    private readonly TempDirectory _scratch = new();

    private static readonly DpoBenchmarkOptions Tiny = new()
    {
        TrainingPairs = 16,
        HeldBackPairs = 8,
        MaxPromptCharacters = 80,
        MaxAnswerCharacters = 40,
        Epochs = 2,
        BatchSize = 4,
        LearningRate = 5e-3,
        Beta = 0.5,
        MaxSequenceLength = 128,
        Evaluation = new SafetyBenchmarkOptions { HarmfulPrompts = 3, XsTestPrompts = 2, Sst2DevPrompts = 2, MaxNewTokens = 4, AccuracyMaxNewTokens = 2 },
    };

    private string BaseModel() => TinyModels.SaveLlamaFolder(Path.Combine(_scratch.Path, "base"));

    [Fact]
    public void The_base_is_its_own_reference_and_the_harness_held_back_reward_accuracy_agrees_with_the_trainers_validation()
    {
        using var benchmark = new DpoBenchmark(Tiny, BaseModel());
        var results = benchmark.Run(Path.Combine(_scratch.Path, "out", "results.json"), "test");

        var baseline = results.Base!;
        Assert.Equal(0, baseline.HeldBackRewardAccuracy);
        Assert.Equal(0, baseline.HeldBackRewardMargin);
        Assert.InRange(baseline.HeldBackPreferenceAccuracy, 0, 100);
        Assert.Equal(DpoBenchmarkRuns.All, results.Runs.Select(r => r.Name));

        var sft = results.Find(DpoBenchmarkRuns.Sft)!;
        var harmless = results.Find(DpoBenchmarkRuns.Harmless)!;
        var flipped = results.Find(DpoBenchmarkRuns.Flipped)!;
        // 16 pairs (or rows), 4 a batch, 2 epochs.
        Assert.All(results.Runs, r => Assert.Equal(8, r.Steps));
        // A DPO step reads both answers; flipping swaps them, so the same tokens are trained on.
        Assert.Equal(harmless.TrainingTokens, flipped.TrainingTokens);
        Assert.True(harmless.TrainingTokens > sft.TrainingTokens);
        Assert.Null(sft.TrainerValidationRewardAccuracy);
        foreach (var dpo in new[] { harmless, flipped })
        {
            // The same held-back pairs against the same reference: the harness and the trainer's validation pass may
            // differ only where padding moves a margin across zero (one pair in 8 is 12.5 points).
            Assert.InRange(Math.Abs(dpo.TrainerValidationRewardAccuracy!.Value - dpo.HeldBackRewardAccuracy), 0, 12.5 + 1e-9);
            Assert.NotNull(dpo.FinalTrainingRewardAccuracy);
            Assert.True(dpo.TokensPerSecond > 0);
        }
        Assert.NotEqual(harmless.HeldBackRewardMargin, flipped.HeldBackRewardMargin);
        Assert.All(results.Runs, r =>
        {
            Assert.True(r.RssBeforeTraining > 0);
            Assert.True(r.PeakRssDuringTraining >= r.RssBeforeTraining);
            Assert.InRange(r.Safety.ClassifierHarmfulScore, 0, 100);
            Assert.Equal(100 - r.Safety.KeywordHarmfulScore, r.RefusalRate);
        });

        var markdown = DpoBenchmarkReport.ToMarkdown(results, "tiny");
        foreach (var row in new[] { "| base |", "| sft_chosen |", "| dpo_harmless |", "| dpo_flipped |" }) Assert.Contains(row, markdown);
    }

    [Fact]
    public void A_rerun_skips_finished_runs_and_another_setting_is_refused()
    {
        var baseModel = BaseModel();
        var results = Path.Combine(_scratch.Path, "out", "results.json");
        using (var benchmark = new DpoBenchmark(Tiny with { Runs = [DpoBenchmarkRuns.Flipped] }, baseModel))
            Assert.Single(benchmark.Run(results, "test").Runs);

        var stored = DpoBenchmarkResults.Load(results);
        using (var benchmark = new DpoBenchmark(Tiny with { Runs = [DpoBenchmarkRuns.Flipped, DpoBenchmarkRuns.Harmless] }, baseModel))
        {
            var second = benchmark.Run(results, "test");
            Assert.Equal([DpoBenchmarkRuns.Flipped, DpoBenchmarkRuns.Harmless], second.Runs.Select(r => r.Name));
            Assert.Equal(stored.Runs[0].WallSeconds, second.Runs[0].WallSeconds);
            Assert.Equal(stored.Base!.WallSeconds, second.Base!.WallSeconds);
            // The base was evaluated by the first instance: this one reads the reference figures from the base weights again.
            var harmless = second.Runs[1];
            Assert.InRange(Math.Abs(harmless.TrainerValidationRewardAccuracy!.Value - harmless.HeldBackRewardAccuracy), 0, 12.5 + 1e-9);
        }

        using var changed = new DpoBenchmark(Tiny with { Beta = 0.2 }, baseModel);
        var error = Assert.Throws<InvalidOperationException>(() => changed.Run(results, "test"));
        Assert.Contains("another setting", error.Message);
    }

    [Fact]
    public void Too_few_pairs_after_the_selection_is_refused_with_the_count()
    {
        var error = Assert.Throws<ArgumentException>(() => new DpoBenchmark(Tiny with { HeldBackPairs = 5000 }, BaseModel()));
        Assert.Contains("pairs pass the 'all' selection", error.Message);
    }

    public void Dispose() => _scratch.Dispose();
}
