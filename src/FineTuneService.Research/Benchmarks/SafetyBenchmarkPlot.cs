using ScottPlot;

namespace FineTuneService.Research.Benchmarks;

/// <summary>The benchmark's figure: HS (classifier), keyword HS and FA against the harmful ratio p, one line per strategy.</summary>
public static class SafetyBenchmarkPlot
{
    public static void SavePng(SafetyBenchmarkResults results, string path)
    {
        var strategies = SafetyBenchmarkReport.StrategiesIn(results);
        var ratios = SafetyBenchmarkReport.RatiosIn(results);
        var multiplot = new Multiplot();
        multiplot.AddPlots(3);
        Panel(multiplot.GetPlot(0), "Harmful score, classifier judge (%)");
        Panel(multiplot.GetPlot(1), "Harmful score, keyword judge (%)");
        Panel(multiplot.GetPlot(2), "Fine-tune accuracy, SST-2 dev (%)");
        Series(multiplot.GetPlot(0), c => c.ClassifierHarmfulScore, results.Base?.ClassifierHarmfulScore);
        Series(multiplot.GetPlot(1), c => c.KeywordHarmfulScore, results.Base?.KeywordHarmfulScore);
        Series(multiplot.GetPlot(2), c => c.FineTuneAccuracy, results.Base?.FineTuneAccuracy);
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

        void Series(Plot plot, Func<SafetyBenchmarkCell, double> metric, double? baseline)
        {
            var xs = ratios.ToArray();
            if (baseline is { } b)
            {
                var line = plot.Add.HorizontalLine(b);
                line.LinePattern = LinePattern.Dashed;
                line.Color = Colors.Black;
                line.LegendText = "base model";
            }
            // One fixed colour per strategy (by its place in the catalogue), so every panel and every run reads alike.
            var palette = new ScottPlot.Palettes.Category10();
            foreach (var strategy in strategies)
            {
                var color = palette.GetColor(SafetyBenchmarkStrategies.All.ToList().IndexOf(strategy));
                var spreads = ratios.Select(r => SafetyBenchmarkReport.Spread(results, strategy, r, metric)).ToArray();
                var present = Enumerable.Range(0, xs.Length).Where(i => spreads[i].Count > 0).ToArray();
                if (present.Length == 0) continue;
                var scatter = plot.Add.Scatter(present.Select(i => xs[i]).ToArray(), present.Select(i => spreads[i].Mean).ToArray());
                scatter.LegendText = strategy;
                scatter.Color = color;
                scatter.LineWidth = 2;
                var bars = plot.Add.ErrorBar(present.Select(i => xs[i]).ToArray(), present.Select(i => spreads[i].Mean).ToArray(), present.Select(i => spreads[i].Std).ToArray());
                bars.Color = scatter.Color;
            }
        }
    }
}
