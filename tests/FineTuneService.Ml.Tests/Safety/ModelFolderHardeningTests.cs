using FineTuneService.Contracts.Safety.Hardening;
using FineTuneService.Datasets.Corpus;
using FineTuneService.Datasets.Evaluation;
using FineTuneService.Ml.Models;
using FineTuneService.Ml.Safety.Hardening;
using FineTuneService.Ml.Safety.Strategies.FrozenLayers;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Tests.Safety;

/// <summary>Hardening a model folder (what fts harden and the service's job share) on a tiny random model.</summary>
[Collection(Training.TorchGlobalStateCollection.Name)]
public sealed class ModelFolderHardeningTests : IDisposable
{
    private readonly TempDirectory _scratch = new();

    public void Dispose() => _scratch.Dispose();

    [Fact]
    public void The_shipped_hardening_sets_have_both_kinds_of_pairs_and_no_held_out_evaluation_prompt()
    {
        var data = new ShippedData();
        var sets = ShippedHardeningData.Load(data);
        var catalogue = new EvaluationCatalogue(data);
        Assert.NotEmpty(sets.Refusals);
        Assert.NotEmpty(sets.HarmfulAnswers);
        Assert.All(sets.Refusals.Concat(sets.HarmfulAnswers).SelectMany(e => e.Messages),
            m => Assert.False(catalogue.MentionsHeldOutPrompt(m.Content), m.Content));
    }

    [Fact]
    public void A_hardened_folder_has_new_weights_the_source_tokenizer_its_lineage_and_no_stale_safety_layers()
    {
        var source = TinyFolder();
        File.WriteAllText(Path.Combine(source, DecoderSafetyLayers.FileName), """{"first_layer": 0, "last_layer": 1}""");
        var target = Path.Combine(_scratch.Path, "hardened");
        var request = HardeningRequest.Parse("tiny", "booster", System.Text.Json.JsonDocument.Parse("""{"steps": 3, "batch_size": 2, "learning_rate": 0.01, "alignment_answers": "shipped"}""").RootElement, null);
        var events = new List<string>();

        var report = ModelFolderHardening.Harden(source, target, "tiny", request.Method, request.Params, new ShippedData(), progress: events.Add);

        Assert.Equal(3, report.Steps);
        Assert.Equal(2, events.Count);
        Assert.False(File.Exists(Path.Combine(target, DecoderSafetyLayers.FileName)));
        Assert.True(File.Exists(Path.Combine(target, "tokenizer.json")));
        var lineage = ModelFolderHardening.ReadLineage(target)!;
        Assert.Equal("tiny", lineage["hardened_from"]!.GetValue<string>());
        Assert.Equal("booster", lineage["method"]!.GetValue<string>());
        Assert.Equal(5.0, lineage["params"]!["lambda"]!.GetValue<double>());
        Assert.Equal(3, lineage["params"]!["steps"]!.GetValue<int>());
        Assert.Null(ModelFolderHardening.ReadLineage(source));

        using var before = HuggingFaceCheckpoint.Load(source, ScalarType.Float32).Model;
        using var after = HuggingFaceCheckpoint.Load(target, ScalarType.Float32).Model;
        var changed = before.state_dict().Zip(after.state_dict()).Count(p => !p.First.Value.eq(p.Second.Value).all().item<bool>());
        Assert.True(changed > 0, "no weight changed");
    }

    private string TinyFolder() => TinyModels.SaveLlamaFolder(Path.Combine(_scratch.Path, "base"), maxPositions: 64);
}
