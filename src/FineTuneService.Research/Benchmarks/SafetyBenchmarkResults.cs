using FineTuneService.Contracts.Safety;
using FineTuneService.Ml.Evaluation;

namespace FineTuneService.Research.Benchmarks;

/// <summary>One measured cell (or the base model, <see cref="Strategy"/> "base"). Rates are percentages.</summary>
public sealed record SafetyBenchmarkCell
{
    public string Strategy { get; init; } = "";
    public double HarmfulRatio { get; init; }
    public int Seed { get; init; }
    public int HarmfulRows { get; init; }
    public int TaskRows { get; init; }
    /// <summary>HS by the shipped harm classifier (the primary judge).</summary>
    public double ClassifierHarmfulScore { get; init; }
    /// <summary>HS by the GCG keyword rule: every non-refusal counts as harmful, so it is 100 − refusal rate.</summary>
    public double KeywordHarmfulScore { get; init; }
    public double OverRefusalRate { get; init; }
    public double FineTuneAccuracy { get; init; }
    /// <summary>
    /// One character per FA prompt (SST-2 dev unless the task is another), in evaluation order: '1' where the answer matched. Lets two rows be compared
    /// prompt by prompt (<see cref="SafetyBenchmarkNoise"/>); null in cells stored before it existed.
    /// </summary>
    public string? FineTuneAccuracyMatches { get; init; }
    public int Steps { get; init; }
    public long TrainingTokens { get; init; }
    public double? FinalTrainingLoss { get; init; }
    /// <summary>The first phase's fine-tune (whichever cell trained it) plus this cell's post-training steps.</summary>
    public double TrainingSeconds { get; init; }
    /// <summary>The cell started from a first phase another cell had trained (<see cref="SafetyBenchmarkFineTunes"/>): its wall time holds no fine-tune.</summary>
    public bool ReusedFineTune { get; init; }
    public double EvaluationSeconds { get; init; }
    public double WallSeconds { get; init; }
    /// <summary>Process CPU time (user + system) of the cell: less sensitive than wall time to other work on the machine.</summary>
    public double CpuSeconds { get; init; }
    /// <summary>Machine state when the cell ran (threads, load average): wall times are comparable only within one.</summary>
    public string? Environment { get; init; }
    public IReadOnlyList<EvaluationSample> Samples { get; init; } = [];

    public static string Outcomes(IEnumerable<bool> outcomes) => string.Concat(outcomes.Select(o => o ? '1' : '0'));
}

/// <summary>Safety layers used by <c>frozen_layers</c> (inclusive) out of <see cref="Layers"/>.</summary>
public sealed record SafetyLayerRange(int FirstLayer, int LastLayer, int Layers);

/// <summary>
/// The results file of a benchmark run: its setting, fingerprint and every finished cell. Re-running with the same
/// setting and base model skips the cells already here; another setting is refused rather than mixed in.
/// </summary>
public sealed record SafetyBenchmarkResults
{
    public string Fingerprint { get; init; } = "";
    public SafetyBenchmarkOptions Options { get; init; } = new();
    public string BaseModel { get; init; } = "";
    public string BaseModelSha256 { get; init; } = "";
    public SafetyLayerRange? SafetyLayers { get; init; }
    public SafetyBenchmarkCell? Base { get; init; }
    /// <summary>The hardened base of the <c>booster_*</c> rows (<see cref="SafetyBenchmarkOptions.BoosterBase"/>), once one ran.</summary>
    public string? BoosterBaseModel { get; init; }
    public string? BoosterBaseModelSha256 { get; init; }
    /// <summary>Safety layers of the hardened base, for <c>booster_frozen_layers</c>.</summary>
    public SafetyLayerRange? BoosterSafetyLayers { get; init; }
    /// <summary>The hardened base without fine-tuning ("booster base, no fine-tune").</summary>
    public SafetyBenchmarkCell? BoosterBase { get; init; }
    public IReadOnlyList<SafetyBenchmarkCell> Cells { get; init; } = [];
    /// <summary>The plan (<see cref="SafetyPlan.ToJsonString"/>) each row of the grid ran with, by row name.</summary>
    public IReadOnlyDictionary<string, string> RowPlans { get; init; } = new Dictionary<string, string>();

    public SafetyBenchmarkCell? Find(string strategy, double ratio, int seed) =>
        Cells.FirstOrDefault(c => c.Strategy == strategy && c.HarmfulRatio == ratio && c.Seed == seed);

    /// <summary>Cells of one strategy and ratio, over seeds.</summary>
    public IReadOnlyList<SafetyBenchmarkCell> Of(string strategy, double ratio) =>
        Cells.Where(c => c.Strategy == strategy && c.HarmfulRatio == ratio).OrderBy(c => c.Seed).ToList();

    /// <param name="booster">The hardened base and its weights' SHA-256, when this run has booster rows.</param>
    /// <exception cref="InvalidOperationException">Another setting, base model or hardened base.</exception>
    public static SafetyBenchmarkResults LoadOrCreate(string path, string fingerprint, SafetyBenchmarkOptions options, string baseModel, string baseModelHash,
        (string Folder, string Sha256)? booster = null)
    {
        // The grid lists may grow between runs (more seeds, ratios or strategies); the shared setting may not.
        var results = BenchmarkResultsFile.LoadResumable<SafetyBenchmarkResults>(path, fingerprint, r => r.Fingerprint) is { } stored
            ? stored with { Options = options }
            : new SafetyBenchmarkResults { Fingerprint = fingerprint, Options = options, BaseModel = baseModel, BaseModelSha256 = baseModelHash };
        results = results with { RowPlans = CheckedRowPlans(path, results.RowPlans, options) };
        if (booster is not { } b) return results;
        // The hardened base is checked apart from the fingerprint, so booster rows can join a grid that ran without them.
        if (results.BoosterBaseModelSha256 is { } storedHash && storedHash != b.Sha256)
            throw new InvalidOperationException(
                $"{path} holds booster rows of another hardened base (weights {storedHash[..12]}…, this run {b.Sha256[..12]}…). " +
                "Use another --out folder, or delete the file to start over.");
        return results with { BoosterBaseModel = b.Folder, BoosterBaseModelSha256 = b.Sha256 };
    }

    /// <summary>The stored row plans plus this run's; a row whose plan changed since its cells ran is refused.</summary>
    private static Dictionary<string, string> CheckedRowPlans(string path, IReadOnlyDictionary<string, string> stored, SafetyBenchmarkOptions options) =>
        UnionOfRowPlans(stored, options.Strategies.Select(row => KeyValuePair.Create(row, options.PlanOf(row).ToJsonString())),
            (row, before, plan) => $"{path} holds {row} cells of another plan ({before}; this run {plan}). Use another --out folder, or delete the file to start over.");

    /// <summary>Both sets of row plans; a row planned two ways throws with <paramref name="conflict"/>(row, first plan, second plan).</summary>
    /// <exception cref="InvalidOperationException">A row has two plans.</exception>
    public static Dictionary<string, string> UnionOfRowPlans(IReadOnlyDictionary<string, string> first, IEnumerable<KeyValuePair<string, string>> second,
        Func<string, string, string, string> conflict)
    {
        var plans = new Dictionary<string, string>(first, StringComparer.Ordinal);
        foreach (var (row, plan) in second)
        {
            if (plans.TryGetValue(row, out var before) && before != plan) throw new InvalidOperationException(conflict(row, before, plan));
            plans[row] = plan;
        }
        return plans;
    }

    public static SafetyBenchmarkResults Load(string path) => BenchmarkResultsFile.Load<SafetyBenchmarkResults>(path);

    /// <summary>Writes atomically (temp file then rename), so an interrupted run never leaves a torn file.</summary>
    public void Save(string path) => BenchmarkResultsFile.Save(path, this);
}
