namespace FineTuneService.Ml.Evaluation.Evaluators;

internal static class Rates
{
    public static double Percent(int hits, int total) => total == 0 ? 0 : Math.Round(100.0 * hits / total, 2);

    /// <summary>Per-category hit rates; null when no item has a category.</summary>
    public static IReadOnlyDictionary<string, CategoryScore>? ByCategory(IReadOnlyList<string?> categories, IReadOnlyList<bool> hits)
    {
        if (categories.All(c => c is null)) return null;
        return categories.Select((c, i) => (Category: c ?? "uncategorized", Hit: hits[i]))
            .GroupBy(x => x.Category, StringComparer.Ordinal)
            .OrderBy(g => g.Key, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g =>
            {
                var total = g.Count();
                var count = g.Count(x => x.Hit);
                return new CategoryScore(total, count, Percent(count, total));
            });
    }
}
