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
        Assert.NotEmpty(sets.Safety.Refusals);
        Assert.NotEmpty(sets.Safety.HarmfulAnswers);
        Assert.All(sets.Safety.Refusals.Concat(sets.Safety.HarmfulAnswers).SelectMany(e => e.Messages),
            m => Assert.False(catalogue.MentionsHeldOutPrompt(m.Content), m.Content));
    }

    [Fact]
    public void The_benign_candidates_are_training_instructions_from_each_source_in_turn_and_no_evaluation_prompt()
    {
        var data = new ShippedData();
        var catalogue = new EvaluationCatalogue(data);
        var benign = ShippedHardeningData.Load(data).Benign;
        var dolly = data.Dolly().Select(r => TaskPrompts.InstructionPrompt(r.Instruction, r.Input)).ToHashSet();
        var selfInstruct = data.SelfInstruct().Select(r => TaskPrompts.InstructionPrompt(r.Instruction, r.Input)).ToHashSet();
        var sst2Train = data.Sst2("train").Select(r => TaskPrompts.Sst2Example(r).Messages[0].Content).ToHashSet();
        var evaluation = catalogue.XsTestSafe.Concat(catalogue.XsTestUnsafe).Select(p => p.Prompt).Concat(catalogue.Sst2Dev.Select(p => p.Prompt)).ToHashSet();
        var prompts = benign.Select(e => e.Messages[0].Content).ToList();

        Assert.Equal(ShippedHardeningData.DefaultBenignCount, benign.Count);
        Assert.Equal(new[] { true, false, false }, new[] { dolly, selfInstruct, sst2Train }.Select(s => s.Contains(prompts[0])));
        Assert.Equal(new[] { false, true, false }, new[] { dolly, selfInstruct, sst2Train }.Select(s => s.Contains(prompts[1])));
        Assert.Equal(new[] { false, false, true }, new[] { dolly, selfInstruct, sst2Train }.Select(s => s.Contains(prompts[2])));
        Assert.All(prompts, p => Assert.True(dolly.Contains(p) || selfInstruct.Contains(p) || sst2Train.Contains(p), p));
        Assert.All(prompts, p => Assert.DoesNotContain(p, evaluation));
        Assert.All(prompts, p => Assert.False(catalogue.MentionsHeldOutPrompt(p), p));
    }

    [Fact]
    public void A_training_instruction_that_mentions_an_evaluation_prompt_is_not_a_benign_candidate()
    {
        var shipped = new ShippedData();
        var catalogue = new EvaluationCatalogue(shipped);
        var folder = Path.Combine(_scratch.Path, "data");
        Directory.CreateDirectory(Path.Combine(folder, "dolly_subset"));
        foreach (var dataset in Directory.GetDirectories(shipped.Directory).Where(d => Path.GetFileName(d) != "dolly_subset"))
            Directory.CreateSymbolicLink(Path.Combine(folder, Path.GetFileName(dataset)), dataset);
        var planted = new[]
        {
            catalogue.XsTestSafe[0].Prompt,
            "Please answer: " + catalogue.XsTestSafe[1].Prompt,
            catalogue.HeldOutHarmful[0].Prompt,
            "Is this review positive? " + shipped.Sst2("dev")[0].Text,
        };
        const string kept = "Name three rivers in Europe.";
        File.WriteAllLines(Path.Combine(folder, "dolly_subset", "databricks-dolly-15k-safety-only.jsonl"),
            planted.Append(kept).Select(p => System.Text.Json.JsonSerializer.Serialize(new { instruction = p, context = "", response = "An answer.", category = "open_qa" })));

        var prompts = ShippedHardeningData.Load(new ShippedData(folder)).Benign.Select(e => e.Messages[0].Content).ToList();

        Assert.Contains(kept, prompts);
        Assert.All(planted, p => Assert.DoesNotContain(p, prompts));
    }

    [Fact]
    public void A_hardening_with_benign_pairs_answers_them_with_the_base_and_records_the_share()
    {
        // Room for the benign prompts in the tiny tokenizer's tokens (a few hundred; 64 positions would fit none).
        var source = TinyModels.SaveLlamaFolder(Path.Combine(_scratch.Path, "base-256"), maxPositions: 256);
        var target = Path.Combine(_scratch.Path, "hardened-benign");
        var request = HardeningRequest.Parse("tiny", "booster", System.Text.Json.JsonDocument.Parse(
            """{"steps": 3, "batch_size": 2, "learning_rate": 0.01, "alignment_answers": "shipped", "benign_share": 0.5}""").RootElement, null);
        var events = new List<string>();

        var report = ModelFolderHardening.Harden(source, target, "tiny", request.Method, request.Params, new ShippedData(), progress: events.Add);

        Assert.Equal(3, report.Steps);
        Assert.True(double.IsFinite(report.FirstAlignmentLoss) && double.IsFinite(report.LastAlignmentLoss), $"{report}");
        Assert.Matches(@" [1-3] benign pairs ", events[0]); // three steps draw at most three benign pairs
        Assert.Equal(0.5, ModelFolderHardening.ReadLineage(target)!["params"]!["benign_share"]!.GetValue<double>());
    }

    [Fact]
    public void A_hardened_folder_has_new_weights_the_source_tokenizer_its_lineage_and_no_stale_safety_layers()
    {
        var source = TinyFolder();
        File.WriteAllText(Path.Combine(source, DecoderSafetyLayers.FileName), """{"first_layer": 0, "last_layer": 1}""");
        var target = Path.Combine(_scratch.Path, "hardened");
        var request = HardeningRequest.Parse("tiny", "booster", System.Text.Json.JsonDocument.Parse("""{"steps": 3, "batch_size": 2, "learning_rate": 0.01, "alignment_answers": "shipped", "benign_share": 0}""").RootElement, null);
        var events = new List<string>();

        var report = ModelFolderHardening.Harden(source, target, "tiny", request.Method, request.Params, new ShippedData(), progress: events.Add);

        Assert.Equal(3, report.Steps);
        Assert.Equal(2, events.Count);
        Assert.Contains(" 0 benign pairs ", events[0]);
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
