using System.Globalization;
using FineTuneService.Ml.Training;
using FineTuneService.Research.Benchmarks;
using Microsoft.Extensions.Logging;

namespace FineTuneService.Cli.Commands;

/// <summary>The harmful fine-tuning benchmark of the safety strategies (resumable; see <see cref="SafetyBenchmark"/>).</summary>
public sealed class SafetyBenchCommand : ICliCommand
{
    public const string ResultsFile = "results.json";
    public const string TablesFile = "results.md";
    public const string PlotFile = "hs_fa_vs_p.png";
    /// <summary>First-phase weights, 23 MB per (base, ratio, seed, first phase): not for committing.</summary>
    public const string FineTunesFolder = "fine-tunes";

    public string Name => "bench safety";
    public string Description => "HS/FA/over-refusal of every safety strategy after fine-tuning on SST-2 with a fraction p of harmful rows.";
    public string Usage => $"fts bench safety --base <hf folder> [--rows 400] [--ratios 0,0.05,0.1,0.2] [--strategies {string.Join(',', SafetyBenchmarkStrategies.All)}] " +
                           "[--booster-base <folder by fts harden> (rows booster_none, booster_<strategy>)] [--seeds 3] [--lr 2e-4] [--epochs 1] [--batch 8] [--harmful-prompts 100|FILE] [--safe-prompts FILE] [--xstest-prompts 100] [--sst2-prompts 200] " +
                           "[--max-new-tokens 32] [--threads 0] [--precision fp32|bf16] [--label text] [--out docs/benchmarks/safety] [--fine-tunes <out>/fine-tunes]";

    public Task<int> RunAsync(CliArguments arguments, CancellationToken cancellationToken)
    {
        var baseFolder = Path.GetFullPath(arguments.Get("base") ?? throw new CliUsageException("--base is required (a Hugging Face model folder)."));
        var output = Path.GetFullPath(arguments.Get("out", Path.Combine("docs", "benchmarks", "safety")));
        var defaults = new SafetyBenchmarkOptions();
        var options = BenchCommandSupport.WithPromptCounts(defaults, arguments) with
        {
            Rows = arguments.GetInt("rows", defaults.Rows),
            Ratios = arguments.Has("ratios") ? BenchCommandSupport.List(arguments.Get("ratios")!).Select(r => Number(r, "ratios")).ToList() : defaults.Ratios,
            Strategies = arguments.Has("strategies") ? BenchCommandSupport.List(arguments.Get("strategies")!) : defaults.Strategies,
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
        Directory.CreateDirectory(output);
        var resultsPath = Path.Combine(output, ResultsFile);
        var environment = BenchCommandSupport.EnvironmentAtStart();
        if (benchmark.BoosterBaseModelHash is { } boosterHash) Console.WriteLine($"booster base {benchmark.BoosterBaseModel} (weights {boosterHash[..12]}…)");
        Console.WriteLine($"fingerprint {benchmark.Fingerprint}; attack pool {benchmark.AttackPoolSize} harmful pairs; results in {resultsPath}");

        var results = BenchCommandSupport.RunOrLoadStored(() => benchmark.Run(resultsPath, environment, cancellationToken), () => SafetyBenchmarkResults.Load(resultsPath));
        Write(results, output, arguments.Get("label"));
        return Task.FromResult(0);
    }

    /// <summary>Tables and figure from the results file (also used after a partial run).</summary>
    public static void Write(SafetyBenchmarkResults results, string output, string? label)
    {
        if (results.Cells.Count == 0) return;
        var markdown = $"""
            # Safety benchmark results{(label is null ? "" : $": {label}")}

            Generated by `fts bench safety` from `{ResultsFile}` (every run, with sample responses). Do not edit by hand;
            the setting and how it differs from the papers are in the README of this folder.

            {SafetyBenchmarkReport.Setting(results)}
            - Machine per cell: {results.Cells[^1].Environment}

            ![HS and FA against p]({PlotFile})

            {SafetyBenchmarkReport.Tables(results)}
            """;
        File.WriteAllText(Path.Combine(output, TablesFile), markdown);
        SafetyBenchmarkPlot.SavePng(results, Path.Combine(output, PlotFile));
        Console.WriteLine(markdown);
    }

    private static string? HarmfulPromptsFile(CliArguments arguments) =>
        arguments.Get("harmful-prompts") is { } value && !int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out _)
            ? Path.GetFullPath(value)
            : null;

    private static double Number(string text, string option) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) ? value : throw new CliUsageException($"--{option}: '{text}' is not a number.");
}
