using ScottPlot;

namespace FineTuneService.Research.Benchmarks;

/// <summary>The benchmark's figure: HS (classifier), keyword HS and FA against the harmful ratio p, one line per strategy.</summary>
public static class SafetyBenchmarkPlot
{
    /// <summary>
    /// One fixed colour per strategy (by its place in the catalogue), so every panel and every run reads alike; a
    /// booster row takes its strategy's colour (and a dashed line).
    /// </summary>
    public static Color Color(string row) =>
        new ScottPlot.Palettes.Category10().GetColor(SafetyBenchmarkStrategies.All.ToList().IndexOf(SafetyBenchmarkStrategies.StrategyOf(row)));

    public static void SavePng(SafetyBenchmarkResults results, string path)
    {
        var strategies = SafetyBenchmarkReport.StrategiesIn(results);
        var ratios = SafetyBenchmarkReport.RatiosIn(results);
        var multiplot = new Multiplot();
        multiplot.AddPlots(3);
        Panel(multiplot.GetPlot(0), "Harmful score, classifier judge (%)");
        Panel(multiplot.GetPlot(1), "Harmful score, keyword judge (%)");
        Panel(multiplot.GetPlot(2), "Fine-tune accuracy, SST-2 dev (%)");
        Series(multiplot.GetPlot(0), c => c.ClassifierHarmfulScore);
        Series(multiplot.GetPlot(1), c => c.KeywordHarmfulScore);
        Series(multiplot.GetPlot(2), c => c.FineTuneAccuracy);
        multiplot.GetPlot(0).ShowLegend(Alignment.UpperLeft);
        multiplot.GetPlot(1).HideLegend();
        multiplot.GetPlot(2).HideLegend();
        multiplot.SavePng(path, 900, 1200);

        void Panel(Plot plot, string title)
        {
            plot.Title(title);
            plot.XLabel("harmful ratio p");
            plot.Axes.SetLimitsY(-2, 102);
        }

        void Series(Plot plot, Func<SafetyBenchmarkCell, double> metric)
        {
            var xs = ratios.ToArray();
            foreach (var (name, b) in SafetyBenchmarkReport.Bases(results))
            {
                var line = plot.Add.HorizontalLine(metric(b));
                line.LinePattern = name.StartsWith("booster", StringComparison.Ordinal) ? LinePattern.Dotted : LinePattern.Dashed;
                line.Color = Colors.Black;
                line.LegendText = name;
            }
            foreach (var strategy in strategies)
            {
                var color = Color(strategy);
                var spreads = ratios.Select(r => SafetyBenchmarkReport.Spread(results, strategy, r, metric)).ToArray();
                var present = Enumerable.Range(0, xs.Length).Where(i => spreads[i].Count > 0).ToArray();
                if (present.Length == 0) continue;
                var scatter = plot.Add.Scatter(present.Select(i => xs[i]).ToArray(), present.Select(i => spreads[i].Mean).ToArray());
                scatter.LegendText = strategy;
                scatter.Color = color;
                scatter.LineWidth = 2;
                if (SafetyBenchmarkStrategies.IsBooster(strategy)) scatter.LinePattern = LinePattern.Dashed;
                var bars = plot.Add.ErrorBar(present.Select(i => xs[i]).ToArray(), present.Select(i => spreads[i].Mean).ToArray(), present.Select(i => spreads[i].Std).ToArray());
                bars.Color = scatter.Color;
            }
        }
    }
}
