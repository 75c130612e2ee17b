using FineTuneService.Datasets.Tokenization;
using FineTuneService.Ml.Models;
using FineTuneService.Research.Bootstrap;

namespace FineTuneService.Ml.Tests.Bootstrap;

// Training seeds torch's process-wide generator, so it must not run beside other torch tests.
[Collection(Training.TorchGlobalStateCollection.Name)]
public sealed class BootstrapModelBuilderTests : IDisposable
{
    private readonly DirectoryInfo _root = Directory.CreateTempSubdirectory("fts-bootstrap-");

    private static readonly BootstrapModelOptions Options = BootstrapModelOptions.TestSize with { MaxSteps = 12 };

    [Fact]
    public void Builds_a_loadable_Hugging_Face_folder_whose_loss_falls_and_rebuilds_identically()
    {
        var first = Path.Combine(_root.FullName, "first");
        var second = Path.Combine(_root.FullName, "second");

        var result = new BootstrapModelBuilder(Options).Build(first);
        new BootstrapModelBuilder(Options).Build(second);

        Assert.Equal((12, 12 + 10), (result.FirstPhaseSteps, result.Steps)); // then the test size's 10 sentiment steps
        Assert.True(result.FinalLoss < result.FirstLoss, $"loss {result.FirstLoss} -> {result.FinalLoss}");

        using var loaded = HuggingFaceCheckpoint.Load(first).Model;
        var tokenizer = TokenizerFolder.Load(first);
        Assert.Equal(tokenizer.VocabularySize, loaded.Config.VocabSize);
        Assert.Equal(result.Parameters, loaded.parameters().Sum(p => p.numel()));
        Assert.Equal("Is this harmful?", tokenizer.Decode(tokenizer.Encode("Is this harmful?")));

        // Same seed, same data: byte-identical weights and vocabulary.
        Assert.Equal(File.ReadAllBytes(Path.Combine(first, "model.safetensors")), File.ReadAllBytes(Path.Combine(second, "model.safetensors")));
        Assert.Equal(File.ReadAllText(Path.Combine(first, "vocab.json")), File.ReadAllText(Path.Combine(second, "vocab.json")));
        Assert.True(File.Exists(Path.Combine(first, BootstrapModelBuilder.BuildInfoFile)));
    }

    [Fact]
    public void A_cached_first_phase_is_reused_only_when_it_matches_and_gives_the_same_model()
    {
        var cache = Path.Combine(_root.FullName, "first-phase");
        var trained = Path.Combine(_root.FullName, "trained");
        var reused = Path.Combine(_root.FullName, "reused");

        var fresh = new BootstrapModelBuilder(Options).Build(trained, firstPhaseDirectory: cache);
        var fromCache = new BootstrapModelBuilder(Options).Build(reused, firstPhaseDirectory: cache);
        var otherSentimentPhase = new BootstrapModelBuilder(Options with { SentimentPhase = new BootstrapPhaseOptions { MaxSteps = 4, LearningRate = 2e-3 } })
            .Build(Path.Combine(_root.FullName, "other-sentiment"), firstPhaseDirectory: cache);
        var otherFirstPhase = new BootstrapModelBuilder(Options with { MaxSteps = 8 })
            .Build(Path.Combine(_root.FullName, "other-first"), firstPhaseDirectory: cache);

        Assert.Equal((false, true, true, false),
            (fresh.FirstPhaseReused, fromCache.FirstPhaseReused, otherSentimentPhase.FirstPhaseReused, otherFirstPhase.FirstPhaseReused));
        Assert.Equal(File.ReadAllBytes(Path.Combine(trained, "model.safetensors")), File.ReadAllBytes(Path.Combine(reused, "model.safetensors")));
        Assert.Equal((fresh.Steps, fresh.FirstLoss, fresh.FirstPhaseValidationLoss), (fromCache.Steps, fromCache.FirstLoss, fromCache.FirstPhaseValidationLoss));
        Assert.Equal((8, 8 + 10), (otherFirstPhase.FirstPhaseSteps, otherFirstPhase.Steps));
        Assert.Equal(Options with { MaxSteps = 8 }, BootstrapModelOptions.FromJson(
            File.ReadAllText(Path.Combine(_root.FullName, "other-first", BootstrapModelBuilder.BuildInfoFile))));
    }

    public void Dispose() => _root.Delete(recursive: true);
}
