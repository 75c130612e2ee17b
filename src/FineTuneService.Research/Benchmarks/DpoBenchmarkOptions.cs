using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace FineTuneService.Research.Benchmarks;

/// <summary>Which HH-RLHF pairs the benchmark trains on.</summary>
public static class DpoPairSelections
{
    /// <summary>Every usable single-turn pair.</summary>
    public const string All = "all";

    /// <summary>Pairs whose chosen answer refuses (GCG keywords) and whose rejected answer does not: the flipped job then prefers complying.</summary>
    public const string RefusalContrast = "refusal_contrast";

    /// <summary>Pairs whose rejected answer the shipped harm classifier flags and whose chosen answer it does not.</summary>
    public const string HarmContrast = "harm_contrast";

    public static IReadOnlyList<string> Names { get; } = [All, RefusalContrast, HarmContrast];
}

/// <summary>The runs of <see cref="DpoBenchmark"/>, by name.</summary>
public static class DpoBenchmarkRuns
{
    /// <summary>SFT on the chosen answers of the training pairs: the same rows as the DPO jobs' preferred sides.</summary>
    public const string Sft = "sft_chosen";

    /// <summary>DPO on the harmless pairs as the crowdworkers ranked them.</summary>
    public const string Harmless = "dpo_harmless";

    /// <summary>DPO on the same pairs with the preference flipped: preference poisoning.</summary>
    public const string Flipped = "dpo_flipped";

    public static IReadOnlyList<string> All { get; } = [Sft, Harmless, Flipped];
}

/// <summary>
/// Setting of the DPO benchmark: the HH-RLHF harmless-base pairs (single-turn, both answers non-empty and different,
/// prompt and answers cut to length), a shuffled split into training and held-back pairs, the training
/// hyper-parameters shared by every run, and the safety benchmark's evaluation sizes. Everything here goes into the
/// <see cref="Fingerprint"/> that guards resuming.
/// </summary>
public sealed record DpoBenchmarkOptions
{
    /// <summary>HH-RLHF <c>test.jsonl</c> or <c>test.jsonl.gz</c> (fields <c>chosen</c>, <c>rejected</c>); null reads the shipped 400-row subset.</summary>
    public string? PairsFile { get; init; }
    public string Selection { get; init; } = DpoPairSelections.All;
    public int TrainingPairs { get; init; } = 400;
    public int HeldBackPairs { get; init; } = 80;
    public int MaxPromptCharacters { get; init; } = 300;
    public int MaxAnswerCharacters { get; init; } = 240;
    /// <summary>Seed of the shuffle that splits the pairs.</summary>
    public int DataSeed { get; init; } = 7;

    public IReadOnlyList<string> Runs { get; init; } = DpoBenchmarkRuns.All;
    public int Epochs { get; init; } = 1;
    public int BatchSize { get; init; } = 8;
    /// <summary>Peak learning rate; the worker's is its base rate 2e-3 times the job's multiplier ("auto" 0.1 gives 2e-4).</summary>
    public double LearningRate { get; init; } = 2e-4;
    public double Beta { get; init; } = 0.1;
    public int MaxSequenceLength { get; init; } = 256;
    /// <summary>Seed of the training runs (data order, dropout).</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Evaluation sizes and generation lengths (its grid fields are unused).</summary>
    public SafetyBenchmarkOptions Evaluation { get; init; } = new();

    /// <summary>Torch intra-op threads (0 leaves torch's default).</summary>
    public int Threads { get; init; }

    public IEnumerable<string> Errors()
    {
        if (PairsFile is { } file && !File.Exists(file)) yield return $"pairs file {file} does not exist.";
        if (!DpoPairSelections.Names.Contains(Selection)) yield return $"selection must be one of {string.Join(", ", DpoPairSelections.Names)}.";
        if (TrainingPairs < 1 || HeldBackPairs < 1) yield return "training and held-back pairs must be >= 1.";
        if (MaxPromptCharacters < 1 || MaxAnswerCharacters < 1) yield return "character limits must be >= 1.";
        if (Runs.Count == 0) yield return "runs must not be empty.";
        foreach (var run in Runs.Where(r => !DpoBenchmarkRuns.All.Contains(r)))
            yield return $"unknown run '{run}' (expected {string.Join(", ", DpoBenchmarkRuns.All)}).";
        if (Epochs < 1 || BatchSize < 1 || !(LearningRate > 0) || !(Beta > 0)) yield return "epochs, batch size, learning rate and beta must be positive.";
        if (MaxSequenceLength < 16) yield return "max sequence length must be >= 16.";
        foreach (var error in Evaluation.Errors()) yield return error;
    }

    /// <summary>Hash of everything a run's numbers depend on apart from its name: the setting, the pairs, the base model and the judge.</summary>
    public string Fingerprint(string baseModelHash, string judgeHash, string pairsHash)
    {
        var shared = new
        {
            Selection, TrainingPairs, HeldBackPairs, MaxPromptCharacters, MaxAnswerCharacters, DataSeed, Epochs, BatchSize, LearningRate, Beta,
            MaxSequenceLength, Seed, Evaluation = Evaluation.Fingerprint(baseModelHash, judgeHash), pairsHash,
        };
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(shared))))[..16];
    }
}
