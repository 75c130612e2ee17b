using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using FineTuneService.Contracts.Safety;
using FineTuneService.Ml.SafeTensors;
using static TorchSharp.torch;

namespace FineTuneService.Research.Benchmarks;

/// <summary>What the fine-tune of a first phase cost, kept beside its weights.</summary>
public sealed record SafetyBenchmarkFineTune(int Steps, long TrainingTokens, double? FinalTrainingLoss, double TrainingSeconds);

/// <summary>
/// The fine-tunes the benchmark's rows start from, kept in a folder so that each is trained once. A row's first phase is
/// its plan without the post-training strategies (<see cref="SafetyPlan.UpToTraining"/>): none, antidote, the merges
/// and safety_patch all start from plain SFT; best and projected_gradients_merge from projected gradients. An entry is
/// keyed by the benchmark's fingerprint, the base's weights, the first phase's plan, the ratio and the seed, so a
/// changed setting never reuses one. The weights file is written first and its summary last, whose presence marks a
/// complete entry.
/// </summary>
public sealed class SafetyBenchmarkFineTunes(string directory)
{
    public string Directory { get; } = Path.GetFullPath(directory);

    public static string Key(string fingerprint, string baseModelHash, SafetyPlan firstPhase, double ratio, int seed)
    {
        var text = string.Join('|', fingerprint, baseModelHash, firstPhase.ToJsonString(), ratio.ToString("R", CultureInfo.InvariantCulture), seed);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..20];
    }

    /// <summary>The stored entry and its weights (the caller disposes them), or null when there is none under <paramref name="key"/>.</summary>
    public (SafetyBenchmarkFineTune FineTune, Dictionary<string, Tensor> Weights)? TryLoad(string key)
    {
        var summary = SummaryPath(key);
        if (!File.Exists(summary) || !File.Exists(Path.Combine(Directory, SafeTensorsCheckpoint.SingleFileName(key)))) return null;
        var fineTune = JsonSerializer.Deserialize<SafetyBenchmarkFineTune>(File.ReadAllText(summary))
            ?? throw new InvalidDataException($"{summary} is empty.");
        using var checkpoint = SafeTensorsCheckpoint.Open(Directory, key);
        return (fineTune, checkpoint.LoadAll());
    }

    public void Save(string key, SafetyBenchmarkFineTune fineTune, IEnumerable<KeyValuePair<string, Tensor>> weights)
    {
        System.IO.Directory.CreateDirectory(Directory);
        File.Delete(SummaryPath(key));
        SafeTensorsWriter.Save(Path.Combine(Directory, SafeTensorsCheckpoint.SingleFileName(key)), weights);
        File.WriteAllText(SummaryPath(key), JsonSerializer.Serialize(fineTune));
    }

    private string SummaryPath(string key) => Path.Combine(Directory, key + ".json");
}
