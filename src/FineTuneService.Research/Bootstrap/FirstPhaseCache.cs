using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using FineTuneService.Datasets;
using FineTuneService.Datasets.Sft;
using FineTuneService.Ml.Models;
using FineTuneService.Ml.SafeTensors;
using FineTuneService.Ml.Training;

namespace FineTuneService.Research.Bootstrap;

/// <summary>What the first phase of a bootstrap build produced, kept beside its weights in a cache folder.</summary>
public sealed record FirstPhaseSummary(string Key, int Steps, long TokensSeen, double FirstLoss, double? ValidationLoss, TimeSpan TrainingTime);

/// <summary>
/// Keeps the first phase of a bootstrap build (weights and summary) in a folder, so that sentiment-phase settings can
/// be tried without training the first phase again. The key hashes what the first phase depends on: the model config,
/// the trainer options, every token, mask and weight of its data and the rows they are packed into, so a folder from
/// other data or another packing is never reused.
/// </summary>
public static class FirstPhaseCache
{
    public const string SummaryFile = "first_phase.json";

    public static string Key(DecoderConfig config, SftTrainerOptions trainer, IReadOnlyList<TokenizedExample> training, IReadOnlyList<TokenizedExample> validation)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(Encoding.UTF8.GetBytes(config.ToJson()));
        hash.AppendData(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(trainer)));
        AppendExamples(hash, training);
        hash.AppendData("|rows|"u8);
        foreach (var row in TrainingRows.Build(training, trainer.MaxSequenceLength, trainer.Packing, trainer.Seed, trainer.LossAveraging))
        {
            hash.AppendData(MemoryMarshal.AsBytes(row.InputIds.AsSpan()));
            hash.AppendData(MemoryMarshal.AsBytes(row.Labels.AsSpan()));
            hash.AppendData(MemoryMarshal.AsBytes(row.Weights.AsSpan()));
        }
        hash.AppendData("|validation|"u8);
        AppendExamples(hash, validation);
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private static void AppendExamples(IncrementalHash hash, IReadOnlyList<TokenizedExample> examples)
    {
        foreach (var example in examples)
        {
            hash.AppendData(MemoryMarshal.AsBytes(example.InputIds.AsSpan()));
            hash.AppendData(MemoryMarshal.AsBytes(example.LossMask.AsSpan()));
            hash.AppendData(BitConverter.GetBytes(example.LossWeight));
        }
    }

    /// <summary>Loads the cached weights into <paramref name="model"/> when the folder holds a first phase with this key.</summary>
    public static FirstPhaseSummary? TryLoad(string directory, string key, DecoderLM model)
    {
        var summaryPath = Path.Combine(directory, SummaryFile);
        if (!File.Exists(summaryPath)) return null;
        var summary = JsonSerializer.Deserialize<FirstPhaseSummary>(File.ReadAllText(summaryPath));
        if (summary?.Key != key) return null;
        using var checkpoint = SafeTensorsCheckpoint.Open(directory);
        HuggingFaceCheckpoint.LoadWeights(model, checkpoint, directory);
        return summary;
    }

    /// <summary>
    /// Writes the model folder (<paramref name="saveModelFolder"/>: weights, and a tokenizer so the first phase can be
    /// evaluated on its own), then the summary, whose presence marks a complete folder.
    /// </summary>
    public static void Save(string directory, FirstPhaseSummary summary, Action<string> saveModelFolder)
    {
        Directory.CreateDirectory(directory);
        File.Delete(Path.Combine(directory, SummaryFile));
        saveModelFolder(directory);
        File.WriteAllText(Path.Combine(directory, SummaryFile), JsonSerializer.Serialize(summary));
    }
}
