using System.Globalization;
using FineTuneService.Contracts.Safety;
using FineTuneService.Ml.Training;
using FineTuneService.Research.Benchmarks;
using Microsoft.Extensions.Logging;

namespace FineTuneService.Cli.Commands;

/// <summary>The harmful fine-tuning benchmark of the safety strategies (resumable; see <see cref="SafetyBenchmark"/>).</summary>
public sealed class SafetyBenchCommand : ICliCommand
{
    public const string ResultsFile = SafetyBenchmarkReportFiles.ResultsFile;
    /// <summary>First-phase weights, 23 MB per (base, ratio, seed, first phase): not for committing.</summary>
    public const string FineTunesFolder = "fine-tunes";

    public string Name => "bench safety";
    public string Description => "HS/FA/over-refusal of every safety strategy after fine-tuning on SST-2 (or AG News) with a fraction p of harmful rows.";
    public string Usage => $"fts bench safety --base <hf folder> [--rows 400] [--ratios 0,0.05,0.1,0.2] [--strategies {string.Join(',', SafetyBenchmarkStrategies.All)}] [--plans FILE (more rows: {{\"name\": <a job's safety object>}})] " +
                           $"[--booster-base <folder by fts harden> (rows booster_none, booster_<strategy>)] [--seeds 3] [--lr 2e-4] [--epochs 1] [--batch 8] [--harmful-prompts 100|FILE] [--safe-prompts FILE] [--xstest-prompts 100] [--task {string.Join('|', SafetyBenchmarkTask.All.Select(t => t.Name))}] [--sst2-prompts 200 (the task's evaluation prompts)] " +
                           "[--max-new-tokens 32] [--threads 0] [--precision fp32|bf16] [--label text] [--out docs/benchmarks/safety] [--fine-tunes <out>/fine-tunes]\n" +
                           "       fts bench safety --report-only [--from a.json,b.json (merged into <out>/results.json)] [--label text] [--out docs/benchmarks/safety]";

    public Task<int> RunAsync(CliArguments arguments, CancellationToken cancellationToken)
    {
        if (arguments.Has("report-only")) return Task.FromResult(ReportOnly(arguments));
        if (arguments.Has("from")) throw new CliUsageException("--from merges results files for a report; it goes with --report-only.");
        var baseFolder = Path.GetFullPath(arguments.Get("base") ?? throw new CliUsageException("--base is required (a Hugging Face model folder)."));
        var output = Path.GetFullPath(arguments.Get("out", Path.Combine("docs", "benchmarks", "safety")));
        var defaults = new SafetyBenchmarkOptions();
        var plans = arguments.Get("plans") is { } plansFile ? Plans(plansFile) : defaults.Plans;
        var options = BenchCommandSupport.WithPromptCounts(defaults, arguments) with
        {
            Rows = arguments.GetInt("rows", defaults.Rows),
            Task = arguments.Get("task", defaults.Task),
            Ratios = arguments.Has("ratios") ? BenchCommandSupport.List(arguments.Get("ratios")!).Select(r => Number(r, "ratios")).ToList() : defaults.Ratios,
            Strategies = arguments.Has("strategies") ? BenchCommandSupport.List(arguments.Get("strategies")!) : [.. defaults.Strategies, .. plans.Keys],
            Plans = plans,
            BoosterBase = arguments.Get("booster-base") is { } booster ? Path.GetFullPath(booster) : null,
            Seeds = arguments.GetInt("seeds", defaults.Seeds),
            LearningRate = arguments.GetDouble("lr", defaults.LearningRate),
            Epochs = arguments.GetInt("epochs", defaults.Epochs),
            BatchSize = arguments.GetInt("batch", defaults.BatchSize),
            // --harmful-prompts takes a count of the shipped held-out prompts or a JSONL file that replaces them.
            HarmfulPrompts = HarmfulPromptsFile(arguments) is null ? arguments.GetInt("harmful-prompts", defaults.HarmfulPrompts) : defaults.HarmfulPrompts,
            HarmfulPromptsFile = HarmfulPromptsFile(arguments),
            SafePromptsFile = arguments.Get("safe-prompts") is { } safe ? Path.GetFullPath(safe) : null,
            MaxNewTokens = arguments.GetInt("max-new-tokens", defaults.MaxNewTokens),
            Threads = arguments.GetInt("threads", defaults.Threads),
            Precision = arguments.Get("precision", "fp32") switch
            {
                "fp32" => TrainingPrecision.Float32,
                "bf16" => TrainingPrecision.BFloat16,
                var other => throw new CliUsageException($"--precision takes fp32 or bf16, not '{other}'."),
            },
        };
        BenchCommandSupport.RequireValid(options.Errors());
        BenchCommandSupport.UseThreads(options.Threads);

        using var logging = BenchCommandSupport.ConsoleLogging();
        // Rows that share a first phase (plain SFT for antidote, the merges and safety_patch) reuse its stored fine-tune.
        using var benchmark = new SafetyBenchmark(options, baseFolder, logger: logging.CreateLogger("bench"))
        {
            FineTunes = new SafetyBenchmarkFineTunes(arguments.Get("fine-tunes", Path.Combine(output, FineTunesFolder))),
        };
        BenchCommandSupport.RequireValid(benchmark.DataErrors());
        Directory.CreateDirectory(output);
        var resultsPath = Path.Combine(output, ResultsFile);
        var environment = BenchCommandSupport.EnvironmentAtStart();
        if (benchmark.BoosterBaseModelHash is { } boosterHash) Console.WriteLine($"booster base {benchmark.BoosterBaseModel} (weights {boosterHash[..12]}…)");
        Console.WriteLine($"fingerprint {benchmark.Fingerprint}; attack pool {benchmark.AttackPoolSize} harmful pairs; results in {resultsPath}");

        var results = BenchCommandSupport.RunOrLoadStored(() => benchmark.Run(resultsPath, environment, cancellationToken), () => SafetyBenchmarkResults.Load(resultsPath));
        Write(results, output, arguments.Get("label"));
        return Task.FromResult(0);
    }

    /// <summary>Tables and figures from the results file (also used after a partial run).</summary>
    public static void Write(SafetyBenchmarkResults results, string output, string? label)
    {
        if (SafetyBenchmarkReportFiles.Write(results, output, label) is { } markdown) Console.WriteLine(markdown);
    }

    /// <summary>--report-only: results.md and both figures from <c>&lt;out&gt;/results.json</c> (merged first with --from), no run, no --base.</summary>
    private static int ReportOnly(CliArguments arguments)
    {
        var grid = new[] { "base", "booster-base", "task", "rows", "ratios", "strategies", "plans", "seeds", "lr", "epochs", "batch", "fine-tunes" }.Where(arguments.Has).ToList();
        if (grid.Count > 0) throw new CliUsageException($"--report-only runs nothing, so these options would be ignored: leave out {string.Join(", ", grid.Select(g => "--" + g))}.");
        var output = Path.GetFullPath(arguments.Get("out", Path.Combine("docs", "benchmarks", "safety")));
        var sources = arguments.Get("from") is { } from ? BenchCommandSupport.List(from) : [];
        if (arguments.Has("from") && sources.Count == 0) throw new CliUsageException("--from takes a comma-separated list of results files.");
        try
        {
            var results = SafetyBenchmarkReportFiles.ReportOnly(output, sources, arguments.Get("label"));
            Console.WriteLine($"{results.Cells.Count} cells{(sources.Count > 0 ? $" merged from {sources.Count} file(s)" : "")}; wrote {SafetyBenchmarkReportFiles.TablesFile}, " +
                              $"{SafetyBenchmarkReportFiles.PlotFile} and {SafetyBenchmarkReportFiles.ParetoPlotFile} in {output}");
            return 0;
        }
        catch (Exception e) when (e is FileNotFoundException or InvalidOperationException)
        {
            throw new CliUsageException(e.Message);
        }
    }

    /// <summary>--plans FILE: more rows, as named safety plans (<see cref="SafetyBenchmarkStrategies.ParsePlans"/>).</summary>
    private static IReadOnlyDictionary<string, SafetyPlan> Plans(string file)
    {
        if (!File.Exists(file)) throw new CliUsageException($"--plans: {file} does not exist.");
        try
        {
            return SafetyBenchmarkStrategies.ParsePlans(File.ReadAllText(file));
        }
        catch (FormatException e)
        {
            throw new CliUsageException($"--plans {file}: {e.Message}");
        }
    }

    private static string? HarmfulPromptsFile(CliArguments arguments) =>
        arguments.Get("harmful-prompts") is { } value && !int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out _)
            ? Path.GetFullPath(value)
            : null;

    private static double Number(string text, string option) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) ? value : throw new CliUsageException($"--{option}: '{text}' is not a number.");
}
