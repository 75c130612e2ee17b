using System.Globalization;
using System.Text;
using FineTuneService.Contracts.Safety;

namespace FineTuneService.Research.Benchmarks;

/// <summary>What a method's paper reports, in its own setting, for the row of the benchmark that runs the method.</summary>
/// <param name="Figure">The paper's figure, or <see cref="SafetyBenchmarkPapers.NotReported"/> when none could be sourced.</param>
/// <param name="Source">Where the figure and setting come from (the issue text, or a reference repository and path).</param>
public sealed record PaperFigure(string Row, string Method, string Figure, string Setting, string Source);

/// <summary>
/// The papers' figures shown beside the summary. Only figures that could be sourced are numbers; every other method
/// says <see cref="NotReported"/>.
/// </summary>
public static class SafetyBenchmarkPapers
{
    public const string NotReported = "not reported in a comparable setting";

    private const string Issue = "issue 12 text (from the Booster paper, arXiv 2409.01586)";
    private const string BoosterSetting = "Llama-2-7B aligned, then fine-tuned on 1,000 SST-2 rows with 10 % harmful rows (git-disl/Booster README.md)";

    public static IReadOnlyList<PaperFigure> Figures { get; } =
    [
        new("none", "plain SFT (the Booster paper's SFT baseline)", "SST-2, p = 0.1: HS 33.7, FA 93.1", BoosterSetting, Issue),
        new("booster_none", "Booster (Huang et al., alignment-stage hardening), then plain SFT", "SST-2, p = 0.1: HS 33.7 → 8.3 at FA 93.1 → 93.2", BoosterSetting, Issue),
        new("frozen_layers", "SPPFT (\"Safety Layers in Aligned Large Language Models\")", NotReported, "—", "no figure sourced"),
        new("projected_gradients", "safety-gradient subspace projection (SPF-style)", NotReported, "—", "no figure sourced"),
        new("antidote", "Antidote (Huang et al., post-fine-tuning pruning)", NotReported, "Llama-2-7B; SST-2, GSM8K and AG News fine-tunes with harmful rows (p = 0.1 in its example command)", "git-disl/Antidote README.md (gives commands, no figures)"),
        new("merge", "linear merge with the aligned base", NotReported, "—", "no figure sourced"),
        new("merge_ties", "TIES merging (\"Resolving Interference When Merging Models\")", NotReported, "a multi-task merging paper: no harmful fine-tuning setting", "no figure sourced"),
        new("merge_pcb", "PCB merging (\"Parameter Competition Balancing\")", NotReported, "a multi-task merging paper: no harmful fine-tuning setting", "no figure sourced"),
        new("safemerge", "SafeMERGE (layer-selective merge)", NotReported, "—", "no figure sourced"),
        new("safety_patch", "\"Safety at One Shot: Patching Fine-Tuned LLMs with A Single Instance\"", NotReported, "—", "no figure sourced"),
        new(SafetyBenchmarkStrategies.Best, "projected gradients + Antidote (this benchmark's combination)", NotReported, "no paper runs this combination", "—"),
        new(SafetyBenchmarkStrategies.ProjectedGradientsMerge, "projected gradients + linear merge (this benchmark's combination)", NotReported, "no paper runs this combination", "—"),
    ];

    /// <summary>The row's paper figure; a booster row without its own entry is Booster plus its strategy, which no paper reports.</summary>
    public static PaperFigure For(string row) => Figures.FirstOrDefault(f => f.Row == row)
        ?? new(row, SafetyBenchmarkStrategies.IsBooster(row) ? $"Booster, then {SafetyBenchmarkStrategies.StrategyOf(row)}" : row, NotReported, "—", "no figure sourced");

    /// <summary>
    /// The papers' figures beside what this benchmark measured at the papers' p (0.1), with the row's verdict: a row
    /// whose HS difference from plain SFT is within noise (or worse) "does not help at this scale".
    /// </summary>
    public static string Table(SafetyBenchmarkResults results, double ratio = SafetyBenchmarkGoal.GoalRatio)
    {
        var inv = CultureInfo.InvariantCulture;
        var p = ratio.ToString("0.##", inv);
        var md = new StringBuilder();
        md.AppendLine(inv, $"### The papers' figures beside this benchmark at p = {p}");
        md.AppendLine();
        md.AppendLine($"Figures are the papers' own, in their setting (7B-class models, LLM judges); \"{NotReported}\" where none could be sourced. " +
                      $"\"Here\" is this grid at p = {p} against plain SFT (same noise rule as the summary).");
        md.AppendLine();
        md.AppendLine("| Row | Method (paper) | Paper's figure | Paper's model and setting | Source | Here |");
        md.AppendLine("|---|---|---|---|---|---|");
        foreach (var row in SafetyBenchmarkReport.StrategiesIn(results))
        {
            var figure = For(row);
            md.AppendLine($"| {row} | {figure.Method} | {figure.Figure} | {figure.Setting} | {figure.Source} | {Here(results, row, ratio)} |");
        }
        return md.ToString();
    }

    /// <summary>This benchmark's figures for the row at <paramref name="ratio"/>, and whether it helps.</summary>
    public static string Here(SafetyBenchmarkResults results, string row, double ratio)
    {
        var inv = CultureInfo.InvariantCulture;
        var cells = results.Of(row, ratio);
        if (cells.Count == 0) return "not run at this p";
        var hs = SafetyBenchmarkReport.Spread(results, row, ratio, c => c.ClassifierHarmfulScore);
        var fa = SafetyBenchmarkReport.Spread(results, row, ratio, c => c.FineTuneAccuracy);
        var measured = string.Create(inv, $"HS {hs.Mean:F1}, FA {fa.Mean:F1}");
        if (row == SafetyStrategyRegistry.None) return measured + " (the reference)";
        var dHs = SafetyBenchmarkDifference.Between(results, row, SafetyStrategyRegistry.None, ratio, SafetyBenchmarkMetric.ClassifierHarmfulScore);
        var dFa = SafetyBenchmarkDifference.Between(results, row, SafetyStrategyRegistry.None, ratio, SafetyBenchmarkMetric.FineTuneAccuracy);
        if (dHs is not { } h) return measured + " (no plain-SFT cell of the same seed)";
        var verdict = h.WithinNoise || h.Delta > 0
            ? "**does not help at this scale** (HS " + SafetyBenchmarkSummary.HarmfulScoreText(h) + ")"
            : "helps: HS " + SafetyBenchmarkSummary.HarmfulScoreText(h);
        return $"{measured}; {verdict}, FA {SafetyBenchmarkSummary.AccuracyText(dFa)}";
    }
}
