using FineTuneService.Research.Benchmarks;

namespace FineTuneService.Cli.Commands;

/// <summary>Measures the training/generation engine on this machine and writes docs/benchmarks/engine/*.md + json.</summary>
public sealed class BenchEngineCommand : ICliCommand
{
    public string Name => "bench engine";
    public string Description =>
        "fp32 and bf16 matmul peaks with their spread, SFT tokens/s and MFU, the PyTorch eager anchor, peak memory, generation tokens/s, live tensors (about 3 minutes on 2 cores).";
    public string Usage =>
        "fts bench engine [--out docs/benchmarks/engine] [--threads N] [--repeats 5] [--matmul-seconds 1] [--train-seconds 10] [--train-steps 3] " +
        "[--python /usr/bin/python3 | --no-anchor] [--bootstrap-only] [--batches 8,16 (the bootstrap model's)] [--quick]";

    public Task<int> RunAsync(CliArguments arguments, CancellationToken cancellationToken)
    {
        EngineBenchmark.Run(new EngineBenchmark.Settings(
            arguments.Get("out", Path.Combine("docs", "benchmarks", "engine")),
            arguments.GetInt("threads", 0),
            arguments.Has("quick"),
            MatmulRepeats: arguments.GetInt("repeats", 5),
            MatmulSeconds: arguments.GetDouble("matmul-seconds", 1.0),
            TrainSeconds: arguments.GetDouble("train-seconds", 10),
            TrainSteps: arguments.GetInt("train-steps", 3),
            Python: arguments.Has("no-anchor") ? null : arguments.Get("python", TorchEagerAnchor.DebianPython),
            BootstrapOnly: arguments.Has("bootstrap-only"),
            BootstrapBatches: arguments.Get("batches") is { } batches ? [.. BenchCommandSupport.List(batches).Select(Batch)] : null));
        return Task.FromResult(0);
    }

    private static int Batch(string text) =>
        int.TryParse(text, out var batch) && batch > 0 ? batch : throw new CliUsageException($"--batches takes positive whole numbers, not '{text}'.");
}
