using ScottPlot;

namespace FineTuneService.Research.Benchmarks;

/// <summary>
/// The benchmark's figures: HS (classifier), keyword HS and FA against the harmful ratio p, one line per strategy; and
/// HS against FA, one panel per p, with each p's Pareto front.
/// </summary>
public static class SafetyBenchmarkPlot
{
    /// <summary>
    /// One fixed colour per strategy (by its place in the catalogue), so every panel and every run reads alike; a
    /// booster row takes its strategy's colour (and a dashed line). The first ten are Category10's; the catalogue
    /// has more strategies than that, so the rest take Category20's light shades rather than repeat a colour. Rows from
    /// <c>--plans</c> take the shades after the catalogue's, in the order of <paramref name="planRows"/>.
    /// </summary>
    public static Color Color(string row, IReadOnlyList<string>? planRows = null)
    {
        var strategy = SafetyBenchmarkStrategies.StrategyOf(row);
        var index = SafetyBenchmarkStrategies.All.ToList().IndexOf(strategy);
        if (index < 0) index = (SafetyBenchmarkStrategies.All.Count + Math.Max(0, planRows?.ToList().IndexOf(strategy) ?? 0)) % 20;
        return new ScottPlot.Palettes.Category20().GetColor(index < 10 ? 2 * index : 2 * (index - 10) + 1);
    }

    /// <summary>The strategies of <paramref name="results"/>'s rows that are not in the catalogue, in table order.</summary>
    private static IReadOnlyList<string> PlanRows(SafetyBenchmarkResults results) =>
        SafetyBenchmarkReport.StrategiesIn(results).Select(SafetyBenchmarkStrategies.StrategyOf)
            .Where(s => !SafetyBenchmarkStrategies.IsKnown(s)).Distinct().ToList();

    public static void SavePng(SafetyBenchmarkResults results, string path)
    {
        var strategies = SafetyBenchmarkReport.StrategiesIn(results);
        var ratios = SafetyBenchmarkReport.RatiosIn(results);
        var planRows = PlanRows(results);
        var multiplot = new Multiplot();
        multiplot.AddPlots(3);
        Panel(multiplot.GetPlot(0), "Harmful score, classifier judge (%)");
        Panel(multiplot.GetPlot(1), "Harmful score, keyword judge (%)");
        Panel(multiplot.GetPlot(2), $"Fine-tune accuracy, {results.Options.BenchmarkTask.EvaluationSplit} (%)");
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
                var color = Color(strategy, planRows);
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

    /// <summary>
    /// HS (classifier) against FA, one panel per p: a point per row (mean over seeds; booster rows as triangles), the
    /// base and the hardened base as black squares, the Pareto front (lower HS, higher FA) as a grey line through its
    /// rows, which are labelled.
    /// </summary>
    public static void SaveParetoPng(SafetyBenchmarkResults results, string path)
    {
        var ratios = SafetyBenchmarkReport.RatiosIn(results);
        var planRows = PlanRows(results);
        // One panel per p and one for the legend, which would squeeze a panel it sat beside.
        var columns = Math.Min(3, ratios.Count + 1);
        var rows = (ratios.Count + 1 + columns - 1) / columns;
        var multiplot = new Multiplot();
        multiplot.AddPlots(ratios.Count + 1);
        multiplot.Layout = new ScottPlot.MultiplotLayouts.Grid(rows, columns);
        var bases = SafetyBenchmarkReport.Bases(results).ToList();
        var accuracies = bases.Select(b => b.Cell.FineTuneAccuracy)
            .Concat(ratios.SelectMany(r => SafetyBenchmarkReport.Points(results, r)).Select(p => p.FineTuneAccuracy)).ToList();
        // Room on the right for the labels of the front's last points.
        var (left, right) = (Math.Floor(accuracies.Min() - 1), Math.Ceiling(accuracies.Max() + 4));
        for (var i = 0; i < ratios.Count; i++)
        {
            var plot = multiplot.GetPlot(i);
            plot.Title($"p = {ratios[i].ToString("0.##", System.Globalization.CultureInfo.InvariantCulture)}");
            plot.XLabel($"fine-tune accuracy, {results.Options.BenchmarkTask.EvaluationSplit} (%)");
            plot.YLabel("harmful score, classifier judge (%)");
            foreach (var (name, cell) in bases)
                plot.Add.Marker(cell.FineTuneAccuracy, cell.ClassifierHarmfulScore, BaseShape(name), 11, Colors.Black);
            var points = SafetyBenchmarkReport.Points(results, ratios[i]);
            foreach (var point in points)
                plot.Add.Marker(point.FineTuneAccuracy, point.HarmfulScore, RowShape(point.Row), 10, Color(point.Row, planRows));
            var front = SafetyBenchmarkReport.ParetoFront(points);
            if (front.Count > 1)
            {
                var line = plot.Add.ScatterLine(front.Select(p => p.FineTuneAccuracy).ToArray(), front.Select(p => p.HarmfulScore).ToArray());
                line.Color = Colors.Gray;
                line.LineWidth = 1.5f;
                line.LinePattern = LinePattern.Dashed;
            }
            foreach (var point in front)
            {
                var label = plot.Add.Text(point.Row, point.FineTuneAccuracy, point.HarmfulScore);
                label.LabelFontSize = 12;
                label.OffsetX = 7;
                label.OffsetY = -7;
            }
            plot.Axes.SetLimits(left, right, -3, 103);
        }

        // The legend panel: one entry per base and row, drawn from markers outside its (hidden) axes.
        var legend = multiplot.GetPlot(ratios.Count);
        foreach (var (name, _) in bases)
            legend.Add.Marker(-10, -10, BaseShape(name), 11, Colors.Black).LegendText = name;
        foreach (var row in SafetyBenchmarkReport.StrategiesIn(results))
            legend.Add.Marker(-10, -10, RowShape(row), 10, Color(row, planRows)).LegendText = row;
        var frontEntry = legend.Add.ScatterLine(new double[] { -10, -11 }, new double[] { -10, -11 });
        frontEntry.Color = Colors.Gray;
        frontEntry.LinePattern = LinePattern.Dashed;
        frontEntry.LegendText = "Pareto front (lower HS, higher FA), labelled";
        legend.Axes.SetLimits(0, 1, 0, 1);
        legend.Axes.Frameless();
        legend.HideGrid();
        legend.Title("HS (classifier) against FA, mean over seeds");
        legend.ShowLegend(Alignment.UpperLeft);
        legend.Legend.FontSize = 14;
        multiplot.SavePng(path, 600 * columns, 480 * rows);

        static MarkerShape BaseShape(string name) => name.StartsWith("booster", StringComparison.Ordinal) ? MarkerShape.OpenSquare : MarkerShape.FilledSquare;
        static MarkerShape RowShape(string row) => SafetyBenchmarkStrategies.IsBooster(row) ? MarkerShape.FilledTriangleUp : MarkerShape.FilledCircle;
    }
}
