using FineTuneService.Contracts.Safety.Hardening;
using FineTuneService.Ml.Models;
using FineTuneService.Ml.Safety.Hardening;
using FineTuneService.Ml.Tests.Models;
using FineTuneService.Ml.Tests.Training;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Tests.Safety;

/// <summary>Booster on a tiny decoder: it aligns, and it leaves a harmful gradient step less to gain than plain alignment does.</summary>
[Collection(TorchGlobalStateCollection.Name)]
public sealed class BoosterHardenerTests
{
    private static readonly HardeningData Data = new(TrainerTestData.ReverseTask(8, seed: 2), TrainerTestData.ReverseTask(8, seed: 3), 64);

    private static DecoderLM Model() =>
        DecoderLM.CreateRandom(TinyModels.Llama() with { NumHiddenLayers = 2, VocabSize = TrainerTestData.Vocabulary }, seed: 9);

    private static BoosterParams Fast(double lambda) => new(Lambda: lambda, Steps: 30, LearningRate: 1e-2, BatchSize: 4, BenignShare: 0);

    [Fact]
    public void Booster_aligns_and_shrinks_the_harmful_loss_drop_below_plain_alignment()
    {
        using var scope = NewDisposeScope();
        using var boosted = Model();
        using var plain = Model();

        var booster = new BoosterHardener(Fast(lambda: 5), seed: 1).Harden(boosted, Data);
        var aligned = new BoosterHardener(Fast(lambda: 0), seed: 1).Harden(plain, Data);

        Assert.Equal(aligned.FirstAlignmentLoss, booster.FirstAlignmentLoss, 5); // the same start and the same batches
        Assert.True(booster.LastAlignmentLoss < booster.FirstAlignmentLoss, $"alignment loss {booster.FirstAlignmentLoss} -> {booster.LastAlignmentLoss}");
        Assert.True(booster.LastHarmfulLossDrop < aligned.LastHarmfulLossDrop,
            $"harmful-loss drop after one step: booster {booster.LastHarmfulLossDrop}, plain alignment {aligned.LastHarmfulLossDrop}");
        Assert.All(boosted.parameters(), p => Assert.True(p.isfinite().all().item<bool>()));
        Assert.All(boosted.parameters(), p => Assert.True(p.grad is null));
    }

    [Fact]
    public void Out_of_range_parameters_are_refused()
    {
        Assert.Throws<ArgumentException>(() => new BoosterHardener(new BoosterParams(Alpha: 0)));
        Assert.Throws<ArgumentException>(() => new BoosterHardener(new BoosterParams(Steps: 0)));
        Assert.Throws<ArgumentException>(() => new BoosterHardener(new BoosterParams(BenignShare: 1)));
    }

    [Theory]
    [InlineData(8, 0.5, 4)]
    [InlineData(8, 0.25, 2)]
    [InlineData(4, 0.3, 1)]
    [InlineData(2, 0.75, 1)]
    [InlineData(8, 0.95, 7)]
    public void Alignment_batches_hold_the_stated_share_of_benign_pairs_and_every_benign_pair_in_turn(int batchSize, double share, int benignPerBatch)
    {
        var benign = TrainerTestData.ReverseTask(8, seed: 4);
        var data = Data with { Benign = benign };
        var batches = new BoosterHardener.AlignmentBatches(data, new BoosterParams(BatchSize: batchSize, BenignShare: share), seed: 1);

        var drawn = Enumerable.Range(0, 12).Select(_ => batches.Next()).ToList();

        Assert.All(drawn, batch =>
        {
            Assert.Equal(batchSize, batch.Count);
            Assert.Equal(benignPerBatch, batch.Count(e => benign.Contains(e)));
            Assert.Equal(batchSize - benignPerBatch, batch.Count(e => Data.Alignment.Contains(e)));
        });
        Assert.Equal(benign.Count, drawn.SelectMany(b => b).Where(benign.Contains).Distinct().Count());
    }

    [Fact]
    public void Without_a_benign_share_the_benign_pairs_are_not_used_and_with_one_they_enter_the_alignment_loss()
    {
        using var scope = NewDisposeScope();
        var withBenign = Data with { Benign = TrainerTestData.ReverseTask(8, seed: 4, minLength: 10, maxLength: 12) };
        using var a = Model();
        using var b = Model();
        using var c = Model();

        var refusalsOnly = new BoosterHardener(Fast(lambda: 5) with { Steps = 3, BenignShare = 0 }, seed: 1).Harden(a, Data);
        var benignIgnored = new BoosterHardener(Fast(lambda: 5) with { Steps = 3, BenignShare = 0 }, seed: 1).Harden(b, withBenign);
        var mixed = new BoosterHardener(Fast(lambda: 5) with { Steps = 3, BenignShare = 0.5 }, seed: 1).Harden(c, withBenign);

        Assert.Equal(refusalsOnly, benignIgnored);
        Assert.NotEqual(refusalsOnly.FirstAlignmentLoss, mixed.FirstAlignmentLoss);
        Assert.Equal(refusalsOnly.FirstHarmfulLossDrop, mixed.FirstHarmfulLossDrop, 5); // h's batches are not mixed
    }

    [Fact]
    public void A_benign_share_without_benign_pairs_is_refused()
    {
        using var model = Model();
        var error = Assert.Throws<ArgumentException>(() => new BoosterHardener(Fast(lambda: 5) with { BenignShare = 0.5 }).Harden(model, Data));
        Assert.Contains("benign", error.Message);
    }
}
