using FineTuneService.Research.Benchmarks;

namespace FineTuneService.Cli.Commands;

/// <summary>Measures the training/generation engine on this machine and writes docs/benchmarks/engine/*.md + json.</summary>
public sealed class BenchEngineCommand : ICliCommand
{
    public string Name => "bench engine";
    public string Description => "Matmul peak, SFT tokens/s and MFU, peak memory, generation tokens/s, live tensors (about 20 minutes on 2 cores).";
    public string Usage => "fts bench engine [--out docs/benchmarks/engine] [--threads N] [--steps 2] [--quick]";

    public Task<int> RunAsync(CliArguments arguments, CancellationToken cancellationToken)
    {
        EngineBenchmark.Run(new EngineBenchmark.Settings(
            arguments.Get("out", Path.Combine("docs", "benchmarks", "engine")),
            arguments.GetInt("threads", 0),
            arguments.GetInt("steps", 2),
            arguments.Has("quick")));
        return Task.FromResult(0);
    }
}
