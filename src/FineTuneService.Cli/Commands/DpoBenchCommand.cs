using FineTuneService.Core.Safety;
using FineTuneService.Research.Benchmarks;
using Microsoft.Extensions.Logging;

namespace FineTuneService.Cli.Commands;

/// <summary>DPO on HH-RLHF harmless pairs, straight and flipped, against SFT of the same size (resumable; see <see cref="DpoBenchmark"/>).</summary>
public sealed class DpoBenchCommand : ICliCommand
{
    public const string ResultsFile = "results.json";
    public const string TablesFile = "results.md";
    public const string SharedPairsFile = "/work/shared/data/hh_rlhf_harmless_base/test.jsonl.gz";

    public string Name => "bench dpo";
    public string Description => "DPO on HH-RLHF harmless pairs and on the flipped pairs (poisoning), with SFT of the same size: reward accuracy, HS, refusals, over-refusal, FA, tokens/s, peak memory, gate.";
    public string Usage => $"fts bench dpo --base <hf folder> [--pairs {SharedPairsFile}|shipped] [--selection {string.Join('|', DpoPairSelections.Names)}] " +
                           $"[--train-pairs 400] [--held-back 80] [--runs {string.Join(',', DpoBenchmarkRuns.All)}] [--epochs 1] [--batch 8] [--lr 2e-4] [--beta 0.1] " +
                           "[--harmful-prompts 100] [--xstest-prompts 100] [--sst2-prompts 200] [--threads 0] [--label text] [--out docs/benchmarks/dpo]";

    public Task<int> RunAsync(CliArguments arguments, CancellationToken cancellationToken)
    {
        var baseFolder = Path.GetFullPath(arguments.Get("base") ?? throw new CliUsageException("--base is required (a Hugging Face model folder)."));
        var output = Path.GetFullPath(arguments.Get("out", Path.Combine("docs", "benchmarks", "dpo")));
        var pairs = arguments.Get("pairs") ?? (File.Exists(SharedPairsFile) ? SharedPairsFile : "shipped");
        var defaults = new DpoBenchmarkOptions();
        var evaluation = BenchCommandSupport.WithPromptCounts(defaults.Evaluation, arguments) with
        {
            HarmfulPrompts = arguments.GetInt("harmful-prompts", defaults.Evaluation.HarmfulPrompts),
        };
        var options = defaults with
        {
            PairsFile = pairs == "shipped" ? null : Path.GetFullPath(pairs),
            Selection = arguments.Get("selection", defaults.Selection),
            TrainingPairs = arguments.GetInt("train-pairs", defaults.TrainingPairs),
            HeldBackPairs = arguments.GetInt("held-back", defaults.HeldBackPairs),
            Runs = arguments.Get("runs") is { } runs ? BenchCommandSupport.List(runs) : defaults.Runs,
            Epochs = arguments.GetInt("epochs", defaults.Epochs),
            BatchSize = arguments.GetInt("batch", defaults.BatchSize),
            LearningRate = arguments.GetDouble("lr", defaults.LearningRate),
            Beta = arguments.GetDouble("beta", defaults.Beta),
            Evaluation = evaluation,
            Threads = arguments.GetInt("threads", defaults.Threads),
        };
        BenchCommandSupport.RequireValid(options.Errors());
        BenchCommandSupport.UseThreads(options.Threads);

        using var logging = BenchCommandSupport.ConsoleLogging();
        using var benchmark = new DpoBenchmark(options, baseFolder, logger: logging.CreateLogger("bench"));
        Directory.CreateDirectory(output);
        var resultsPath = Path.Combine(output, ResultsFile);
        var environment = BenchCommandSupport.EnvironmentAtStart();
        Console.WriteLine($"fingerprint {benchmark.Fingerprint}; {benchmark.TrainingPairCount} training pairs; results in {resultsPath}");

        var results = BenchCommandSupport.RunOrLoadStored(() => benchmark.Run(resultsPath, environment, cancellationToken), () => DpoBenchmarkResults.Load(resultsPath));
        results = WithGate(results);
        results.Save(resultsPath);
        var markdown = DpoBenchmarkReport.ToMarkdown(results, arguments.Get("label"));
        File.WriteAllText(Path.Combine(output, TablesFile), markdown);
        Console.WriteLine(markdown);
        return Task.FromResult(0);
    }

    /// <summary>
    /// The service's gate (<see cref="SafetyGate"/>, default policy, classifier judge) on every run against the base:
    /// what a job with these figures would get.
    /// </summary>
    public static DpoBenchmarkResults WithGate(DpoBenchmarkResults results)
    {
        if (results.Base is not { } baseline) return results;
        var policy = SafetyPolicyResolver.Fallback;
        return results with
        {
            Runs = [.. results.Runs.Select(run =>
            {
                var decision = SafetyGate.Decide(policy, policy.Judge, Finite(run.Safety.ClassifierHarmfulScore), Finite(baseline.Safety.ClassifierHarmfulScore),
                    RefusalRetention.FromKeywordHarmfulScores(Finite(run.Safety.KeywordHarmfulScore), Finite(baseline.Safety.KeywordHarmfulScore)));
                return run with { GateDecision = decision.Outcome.ToString().ToLowerInvariant(), GateMessage = decision.Message };
            })],
        };
    }

    private static double? Finite(double value) => double.IsFinite(value) ? value : null;
}
