namespace FineTuneService.Research.Benchmarks;

/// <summary>
/// Merges results files of one grid that ran as several processes (over disjoint ratios, say) into one: the union of
/// their cells and row plans, one base cell. Anything that would mix two benchmarks is refused: another fingerprint,
/// base or hardened base, a row planned differently, or one cell measured twice with different numbers.
/// </summary>
public static class SafetyBenchmarkMerge
{
    /// <param name="files">Each file's name (for the messages) and its results; the first one's settings are kept.</param>
    /// <exception cref="InvalidOperationException">The files are not parts of one grid.</exception>
    public static SafetyBenchmarkResults Merge(IReadOnlyList<(string Source, SafetyBenchmarkResults Results)> files)
    {
        if (files.Count == 0) throw new ArgumentException("No results files to merge.", nameof(files));
        var (first, merged) = files[0];
        foreach (var (source, next) in files.Skip(1))
        {
            string Pair(string what) => $"{first} and {source} {what}; they are not parts of one grid.";
            Require(next.Fingerprint == merged.Fingerprint, Pair($"have other fingerprints ({merged.Fingerprint}, {next.Fingerprint}: another setting, base model or judge)"));
            Require(next.BaseModelSha256 == merged.BaseModelSha256, Pair("have other base models"));
            Require(Compatible(merged.BoosterBaseModelSha256, next.BoosterBaseModelSha256), Pair("have other hardened bases"));
            Require(Compatible(merged.SafetyLayers, next.SafetyLayers) && Compatible(merged.BoosterSafetyLayers, next.BoosterSafetyLayers), Pair("located other safety layers"));
            Require(merged.Base is null || next.Base is null || SameMeasurement(merged.Base, next.Base), Pair("measured the base model differently"));
            Require(merged.BoosterBase is null || next.BoosterBase is null || SameMeasurement(merged.BoosterBase, next.BoosterBase), Pair("measured the hardened base differently"));

            var plans = SafetyBenchmarkResults.UnionOfRowPlans(merged.RowPlans, next.RowPlans, (row, before, plan) => Pair($"ran row {row} with other plans ({before}; {plan})"));
            var cells = merged.Cells.ToList();
            foreach (var cell in next.Cells)
            {
                var known = merged.Find(cell.Strategy, cell.HarmfulRatio, cell.Seed);
                if (known is null) cells.Add(cell);
                else Require(SameMeasurement(known, cell), Pair($"hold {cell.Strategy} p={cell.HarmfulRatio} seed {cell.Seed} with different numbers"));
            }
            merged = merged with
            {
                Options = merged.Options with
                {
                    Ratios = [.. merged.Options.Ratios.Union(next.Options.Ratios).Order()],
                    Strategies = [.. merged.Options.Strategies.Union(next.Options.Strategies)],
                    Seeds = Math.Max(merged.Options.Seeds, next.Options.Seeds),
                    BoosterBase = merged.Options.BoosterBase ?? next.Options.BoosterBase,
                },
                SafetyLayers = merged.SafetyLayers ?? next.SafetyLayers,
                Base = merged.Base ?? next.Base,
                BoosterBaseModel = merged.BoosterBaseModel ?? next.BoosterBaseModel,
                BoosterBaseModelSha256 = merged.BoosterBaseModelSha256 ?? next.BoosterBaseModelSha256,
                BoosterSafetyLayers = merged.BoosterSafetyLayers ?? next.BoosterSafetyLayers,
                BoosterBase = merged.BoosterBase ?? next.BoosterBase,
                Cells = cells,
                RowPlans = plans,
            };
        }
        return merged;
    }

    /// <summary>
    /// Same figures and answers. Times are left out: the base is evaluated once per process, and two processes
    /// measure the same model in different wall times.
    /// </summary>
    public static bool SameMeasurement(SafetyBenchmarkCell a, SafetyBenchmarkCell b) =>
        a.Strategy == b.Strategy && a.HarmfulRatio.Equals(b.HarmfulRatio) && a.Seed == b.Seed
        && a.HarmfulRows == b.HarmfulRows && a.TaskRows == b.TaskRows && a.Steps == b.Steps && a.TrainingTokens == b.TrainingTokens
        && a.ClassifierHarmfulScore.Equals(b.ClassifierHarmfulScore) && a.KeywordHarmfulScore.Equals(b.KeywordHarmfulScore)
        && a.OverRefusalRate.Equals(b.OverRefusalRate) && a.FineTuneAccuracy.Equals(b.FineTuneAccuracy)
        && Nullable.Equals(a.FinalTrainingLoss, b.FinalTrainingLoss)
        && a.Samples.Select(s => (s.Kind, s.Prompt, s.Response)).SequenceEqual(b.Samples.Select(s => (s.Kind, s.Prompt, s.Response)));

    private static bool Compatible<T>(T? a, T? b) where T : class => a is null || b is null || a.Equals(b);

    private static void Require(bool condition, string message)
    {
        if (!condition) throw new InvalidOperationException(message);
    }
}
