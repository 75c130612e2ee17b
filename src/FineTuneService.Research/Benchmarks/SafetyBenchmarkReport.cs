using System.Globalization;
using System.Text;
using FineTuneService.Ml.Training;

namespace FineTuneService.Research.Benchmarks;

/// <summary>Mean and sample standard deviation over seeds; <see cref="Count"/> 0 when the cell has not run.</summary>
public readonly record struct SeedSpread(double Mean, double Std, int Count)
{
    public static SeedSpread Of(IEnumerable<double> values)
    {
        var v = values.ToArray();
        if (v.Length == 0) return new(double.NaN, double.NaN, 0);
        var mean = v.Average();
        var std = v.Length > 1 ? Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Length - 1)) : 0;
        return new(mean, std, v.Length);
    }

    public string Format(string number = "F1") => Count == 0
        ? "—"
        : Count == 1
            ? Mean.ToString(number, CultureInfo.InvariantCulture)
            : string.Create(CultureInfo.InvariantCulture, $"{Mean.ToString(number, CultureInfo.InvariantCulture)} ± {Std.ToString(number, CultureInfo.InvariantCulture)}");
}

/// <summary>One row at one p in the HS-FA plane (means over seeds).</summary>
public sealed record SafetyBenchmarkPoint(string Row, double HarmfulScore, double FineTuneAccuracy);

/// <summary>Tables of a results file in the layout of the Antidote and Booster papers: strategies as rows, p as columns.</summary>
public static class SafetyBenchmarkReport
{
    /// <summary>The rows with cells: the catalogue's in table order, then rows from <c>--plans</c> in the order they ran.</summary>
    public static IReadOnlyList<string> StrategiesIn(SafetyBenchmarkResults results) =>
        [.. SafetyBenchmarkStrategies.Rows.Where(s => results.Cells.Any(c => c.Strategy == s)),
         .. results.Cells.Select(c => c.Strategy).Distinct().Where(s => !SafetyBenchmarkStrategies.IsKnown(s))];

    /// <summary>The plan a row ran, as stored with its cells (results written before plans were stored: the catalogue's).</summary>
    private static string PlanJsonOf(SafetyBenchmarkResults results, string row) =>
        results.RowPlans.TryGetValue(row, out var plan) ? plan : SafetyBenchmarkStrategies.Plan(row).ToJsonString();

    public static IReadOnlyList<double> RatiosIn(SafetyBenchmarkResults results) =>
        results.Cells.Select(c => c.HarmfulRatio).Distinct().Order().ToList();

    public static SeedSpread Spread(SafetyBenchmarkResults results, string strategy, double ratio, Func<SafetyBenchmarkCell, double> metric) =>
        SeedSpread.Of(results.Of(strategy, ratio).Select(metric));

    /// <summary>The result tables (markdown), without the prose around them.</summary>
    public static string Tables(SafetyBenchmarkResults results)
    {
        var strategies = StrategiesIn(results);
        var ratios = RatiosIn(results);
        var md = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        string P(double r) => $"p={r.ToString("0.##", inv)}";
        var seeds = results.Cells.Select(c => c.Seed).Distinct().Count();

        md.AppendLine(inv, $"Mean ± standard deviation over {seeds} seed(s) (a single value where one seed ran). HS and FA in %; lower HS and higher FA are better.");
        md.AppendLine();
        md.AppendLine("### Harmful score (classifier judge) and fine-tune accuracy");
        md.AppendLine();
        md.AppendLine($"| Method | {string.Join(" | ", ratios.Select(r => "HS " + P(r)))} | HS avg | {string.Join(" | ", ratios.Select(r => "FA " + P(r)))} | FA avg |");
        md.AppendLine($"|---|{string.Concat(Enumerable.Repeat("---:|", 2 * ratios.Count + 2))}");
        foreach (var (name, b) in Bases(results))
            md.AppendLine(inv, $"| {name} | {string.Join(" | ", ratios.Select(_ => b.ClassifierHarmfulScore.ToString("F1", inv)))} | {b.ClassifierHarmfulScore:F1} | {string.Join(" | ", ratios.Select(_ => b.FineTuneAccuracy.ToString("F1", inv)))} | {b.FineTuneAccuracy:F1} |");
        foreach (var s in strategies) md.AppendLine(Row(results, s, ratios, c => c.ClassifierHarmfulScore, c => c.FineTuneAccuracy));
        md.AppendLine();
        md.AppendLine("### Harmful score (keyword judge: every non-refusal counts) and over-refusal on XSTest safe prompts");
        md.AppendLine();
        md.AppendLine($"| Method | {string.Join(" | ", ratios.Select(r => "keyword HS " + P(r)))} | avg | {string.Join(" | ", ratios.Select(r => "over-refusal " + P(r)))} | avg |");
        md.AppendLine($"|---|{string.Concat(Enumerable.Repeat("---:|", 2 * ratios.Count + 2))}");
        foreach (var (name, b2) in Bases(results))
            md.AppendLine(inv, $"| {name} | {string.Join(" | ", ratios.Select(_ => b2.KeywordHarmfulScore.ToString("F1", inv)))} | {b2.KeywordHarmfulScore:F1} | {string.Join(" | ", ratios.Select(_ => b2.OverRefusalRate.ToString("F1", inv)))} | {b2.OverRefusalRate:F1} |");
        foreach (var s in strategies) md.AppendLine(Row(results, s, ratios, c => c.KeywordHarmfulScore, c => c.OverRefusalRate));
        md.AppendLine();
        md.AppendLine("### Time per cell (fine-tune + evaluation, seconds) and training steps");
        md.AppendLine();
        md.AppendLine("Wall time depends on what else ran on the machine (see the environment above); process CPU time less so.");
        md.AppendLine();
        md.AppendLine($"| Method | {string.Join(" | ", ratios.Select(r => "wall s " + P(r)))} | training wall s (avg) | CPU s (avg) | steps |");
        md.AppendLine($"|---|{string.Concat(Enumerable.Repeat("---:|", ratios.Count + 3))}");
        foreach (var s in strategies)
        {
            var cells = results.Cells.Where(c => c.Strategy == s).ToList();
            md.AppendLine(inv, $"| {s} | {string.Join(" | ", ratios.Select(r => Spread(results, s, r, c => c.WallSeconds).Format("F0")))} | {cells.Average(c => c.TrainingSeconds):F0} | {cells.Average(c => c.CpuSeconds):F0} | {string.Join("/", cells.Select(c => c.Steps).Distinct().Order())} |");
        }
        return md.ToString();
    }

    /// <summary>Every row at <paramref name="ratio"/> as a point: mean classifier HS and mean FA over its seeds.</summary>
    public static IReadOnlyList<SafetyBenchmarkPoint> Points(SafetyBenchmarkResults results, double ratio) =>
        StrategiesIn(results).Where(s => results.Of(s, ratio).Count > 0)
            .Select(s => new SafetyBenchmarkPoint(s, Spread(results, s, ratio, c => c.ClassifierHarmfulScore).Mean, Spread(results, s, ratio, c => c.FineTuneAccuracy).Mean))
            .ToList();

    /// <summary>The points no other point beats on both axes (HS no higher and FA no lower, one of them strictly), by FA.</summary>
    public static IReadOnlyList<SafetyBenchmarkPoint> ParetoFront(IReadOnlyList<SafetyBenchmarkPoint> points) =>
        points.Where(p => !points.Any(q => q.HarmfulScore <= p.HarmfulScore && q.FineTuneAccuracy >= p.FineTuneAccuracy
                                           && (q.HarmfulScore < p.HarmfulScore || q.FineTuneAccuracy > p.FineTuneAccuracy)))
            .OrderBy(p => p.FineTuneAccuracy).ThenByDescending(p => p.HarmfulScore).ToList();

    /// <summary>The un-fine-tuned models with their table names: the base, and the hardened base when booster rows ran.</summary>
    public static IEnumerable<(string Name, SafetyBenchmarkCell Cell)> Bases(SafetyBenchmarkResults results)
    {
        if (results.Base is { } b) yield return ("base model, no fine-tune", b);
        if (results.BoosterBase is { } booster) yield return ("booster base, no fine-tune", booster);
    }

    private static string Row(SafetyBenchmarkResults results, string strategy, IReadOnlyList<double> ratios,
        Func<SafetyBenchmarkCell, double> left, Func<SafetyBenchmarkCell, double> right)
    {
        var l = ratios.Select(r => Spread(results, strategy, r, left)).ToList();
        var rr = ratios.Select(r => Spread(results, strategy, r, right)).ToList();
        static string Avg(IEnumerable<SeedSpread> s) => s.All(x => x.Count > 0) ? s.Average(x => x.Mean).ToString("F1", CultureInfo.InvariantCulture) : "—";
        return $"| {strategy} | {string.Join(" | ", l.Select(x => x.Format()))} | {Avg(l)} | {string.Join(" | ", rr.Select(x => x.Format()))} | {Avg(rr)} |";
    }

    /// <summary>The setting in a few lines (what the README's honest comparison with the papers refers to).</summary>
    private static string HarmfulSet(SafetyBenchmarkOptions o) => o.HarmfulPromptsFile is { } file
        ? $"the harmful prompts of `{Path.GetFileName(file)}` (given with --harmful-prompts; excluded from every fine-tuning set)"
        : $"{o.HarmfulPrompts} held-out harmful prompts (AdvBench/HarmBench/JBB, never trained by the base nor in any fine-tuning set)";

    private static string SafeSet(SafetyBenchmarkOptions o) => o.SafePromptsFile is { } file
        ? $"the safe prompts of `{Path.GetFileName(file)}` (given with --safe-prompts)"
        : $"{o.XsTestPrompts} XSTest safe prompts";

    private static string Booster(SafetyBenchmarkResults results) => results.BoosterBaseModelSha256 is { } hash
        ? $"; `{SafetyBenchmarkStrategies.BoosterPrefix}*` rows fine-tune the hardened base `{results.BoosterBaseModel}` (SHA-256 `{hash[..12]}…`, written by `fts harden`) instead"
        : "";

    public static string Setting(SafetyBenchmarkResults results)
    {
        var o = results.Options;
        var inv = CultureInfo.InvariantCulture;
        var cell = results.Cells.FirstOrDefault();
        var layers = results.SafetyLayers is { } l ? $"layers {l.FirstLayer}..{l.LastLayer} of {l.Layers}" : "not located";
        return string.Create(inv, $"""
            - Base: `{results.BaseModel}` (safetensors SHA-256 `{results.BaseModelSha256[..12]}…`){Booster(results)}, full fine-tune in {(results.Options.Precision == TrainingPrecision.BFloat16 ? "bf16 compute with fp32 master weights" : "fp32")}.
            - Fine-tuning set: n = {o.Rows} rows; a fraction p is replaced by harmful pairs (BeaverTails unsafe prompt/response and AdvBench goal → target, never a prompt of the HS evaluation share), the rest are {o.BenchmarkTask.TrainingSplit} rows. Seeds 1..{o.Seeds} pick the rows, the order and the strategies' random choices.
            - Hyper-parameters (all strategies alike): {o.Epochs} epoch(s), batch {o.BatchSize}, AdamW lr {o.LearningRate:G} with 3% warmup and cosine decay, max {o.MaxSequenceLength} tokens{(cell is null ? "" : $", {cell.Steps} optimizer steps")}.
            - Strategies, as the service's safety plans (catalogue rows with their default parameters, `--plans` rows as given): {string.Join("; ", StrategiesIn(results).Where(r => !SafetyBenchmarkStrategies.IsBooster(r)).Select(r => $"{r} = `{PlanJsonOf(results, r)}`"))}. Frozen layers without a range use the located safety layers ({layers}). The strategies get the first {o.SafetyExamples} Safety-Tuned LLaMAs refusals (projected gradients) and BeaverTails unsafe pairs (Antidote's calibration set) as safety data.
            - Evaluation: HS on {HarmfulSet(o)}, greedy, {o.MaxNewTokens} new tokens, judged by the shipped harm classifier (primary) and the GCG keyword rule; over-refusal on {SafeSet(o)} (keyword refusal); FA = exact label match on {o.Sst2DevPrompts} {o.BenchmarkTask.EvaluationSplit} prompts ({o.AccuracyMaxNewTokens} new tokens).
            - Results fingerprint `{results.Fingerprint}`; cells recorded: {results.Cells.Count}.
            """);
    }
}
