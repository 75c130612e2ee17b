using System.Text.Json;
using System.Text.Json.Nodes;
using FineTuneService.Contracts.Safety.Hardening;
using FineTuneService.Datasets.Corpus;
using FineTuneService.Datasets.Tokenization;
using FineTuneService.Ml.Evaluation.Judges;
using FineTuneService.Ml.Models;
using FineTuneService.Ml.Safety.Strategies.FrozenLayers;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Safety.Hardening;

/// <summary>
/// Hardens a Hugging Face model folder into a new one: what <c>fts harden</c> and the service's hardening job share.
/// The new folder has the hardened weights, the source's tokenizer and chat template, and <see cref="LineageFile"/>
/// (hardened_from, method, params, the report); not the source's <c>safety_layers.json</c>, since located layers
/// belong to the weights they were located on.
/// </summary>
public static class ModelFolderHardening
{
    /// <summary>The hardened folder's lineage: which base it came from, with which method and parameters.</summary>
    public const string LineageFile = HardeningRequest.LineageFile;

    /// <summary>Longest sequence a hardening pair is cut to (or the model's context, when shorter).</summary>
    public const int DefaultMaxSequenceLength = 256;

    public static HardeningReport Harden(string sourceFolder, string targetFolder, string sourceModelId, HardeningMethodDescriptor method,
        IHardeningParams parameters, ShippedData data, long seed = 1, Device? device = null, Action<string>? progress = null,
        CancellationToken cancellationToken = default, Action<HardeningStep>? onStep = null)
    {
        if (Path.GetFullPath(sourceFolder) == Path.GetFullPath(targetFolder))
            throw new ArgumentException("The hardened model needs a folder of its own.", nameof(targetFolder));
        var loaded = HuggingFaceCheckpoint.Load(sourceFolder, ScalarType.Float32, device);
        using var model = loaded.Model;
        var tokenizer = TokenizerFolder.Load(sourceFolder);
        var hardener = BaseModelHardeners.Create(parameters, seed);
        var sets = hardener.TrainingSets(ShippedHardeningData.Load(data),
            new BaseModelAnswers(model, tokenizer, RefusalKeywords.FromShippedData(data)), cancellationToken);
        var encoded = ShippedHardeningData.Encode(sets, tokenizer, Math.Min(DefaultMaxSequenceLength, model.Config.MaxPositionEmbeddings));
        progress?.Invoke($"Hardening {sourceModelId} with {method.Name} on {encoded.Alignment.Count} refusal pairs, {encoded.BenignPairs.Count} benign pairs "
                         + $"and {encoded.Harmful.Count} harmful pairs (evaluation prompts excluded)");

        var report = hardener.Harden(model, encoded, cancellationToken, onStep);
        progress?.Invoke($"{method.Name}: {report.Steps} steps, alignment loss {report.FirstAlignmentLoss:F4} -> {report.LastAlignmentLoss:F4}, "
                         + $"harmful-loss drop after one step {report.FirstHarmfulLossDrop:F4} -> {report.LastHarmfulLossDrop:F4}");

        HuggingFaceCheckpoint.Save(model, targetFolder, loaded.Generation, copyOtherFilesFrom: sourceFolder);
        File.Delete(Path.Combine(targetFolder, DecoderSafetyLayers.FileName));
        File.Delete(Path.Combine(targetFolder, LineageFile)); // a hardened source's own lineage is replaced by this one
        File.WriteAllText(Path.Combine(targetFolder, LineageFile), Lineage(sourceModelId, method, parameters, report, seed).ToJsonString(Indented));
        return report;
    }

    /// <summary>The lineage document of a hardened folder, or null for a folder that was not hardened.</summary>
    public static JsonObject? ReadLineage(string folder)
    {
        var path = Path.Combine(folder, LineageFile);
        return File.Exists(path) ? JsonNode.Parse(File.ReadAllText(path)) as JsonObject : null;
    }

    private static JsonObject Lineage(string sourceModelId, HardeningMethodDescriptor method, IHardeningParams parameters, HardeningReport report, long seed) => new()
    {
        ["hardened_from"] = sourceModelId,
        ["method"] = method.Name,
        ["params"] = method.ToJson(parameters),
        ["seed"] = seed,
        ["report"] = new JsonObject
        {
            ["steps"] = report.Steps,
            ["first_alignment_loss"] = report.FirstAlignmentLoss,
            ["last_alignment_loss"] = report.LastAlignmentLoss,
            ["first_harmful_loss_drop"] = report.FirstHarmfulLossDrop,
            ["last_harmful_loss_drop"] = report.LastHarmfulLossDrop,
        },
    };

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };
}
