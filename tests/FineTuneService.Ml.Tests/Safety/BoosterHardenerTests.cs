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

    private static BoosterParams Fast(double lambda) => new(Lambda: lambda, Steps: 30, LearningRate: 1e-2, BatchSize: 4);

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
    }
}
