using FineTuneService.Research.Benchmarks;

namespace FineTuneService.Cli.Commands;

/// <summary>Measures the per-step cost of the training-time safety strategies against plain SFT.</summary>
public sealed class SafetyOverheadBenchCommand : ICliCommand
{
    public string Name => "bench safety-overhead";
    public string Description => "Per-step overhead of projected gradients and frozen layers vs plain SFT on a tiny decoder.";
    public string Usage => "fts bench safety-overhead [--out docs/benchmarks/safety/overhead.md] [--steps 50] [--rounds 3] [--layers 4] [--hidden 64]";

    public Task<int> RunAsync(CliArguments arguments, CancellationToken cancellationToken)
    {
        var defaults = new SafetyOverheadOptions();
        var options = defaults with
        {
            Steps = arguments.GetInt("steps", defaults.Steps),
            Rounds = arguments.GetInt("rounds", defaults.Rounds),
            Layers = arguments.GetInt("layers", defaults.Layers),
            HiddenSize = arguments.GetInt("hidden", defaults.HiddenSize),
        };
        if (options.Steps < 2 || options.Rounds < 1 || options.Layers < 2) throw new CliUsageException("Need --steps >= 2, --rounds >= 1 and --layers >= 2.");
        var output = Path.GetFullPath(arguments.Get("out", Path.Combine("docs", "benchmarks", "safety", "overhead.md")));

        // One intra-op thread: per-step CPU time then measures work, not thread spinning on a shared machine.
        TorchSharp.torch.set_num_threads(1);
        var loadBefore = BenchCommandSupport.LoadAverage();
        var results = SafetyOverheadBenchmark.Run(options, Console.WriteLine);
        var environment = $"{Environment.ProcessorCount} logical CPUs, torch threads {TorchSharp.torch.get_num_threads()}, " +
                          $"load average {loadBefore} before / {BenchCommandSupport.LoadAverage()} after, {TimeProvider.System.GetUtcNow():yyyy-MM-dd HH:mm} UTC";
        Directory.CreateDirectory(Path.GetDirectoryName(output)!);
        File.WriteAllText(output, SafetyOverheadBenchmark.ToMarkdown(results, options, environment));
        Console.WriteLine($"wrote {output}");
        return Task.FromResult(0);
    }
}
