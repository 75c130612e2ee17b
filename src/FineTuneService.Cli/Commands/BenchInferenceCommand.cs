using FineTuneService.Core.Data;
using FineTuneService.Research.Benchmarks;
using Microsoft.EntityFrameworkCore;

namespace FineTuneService.Cli.Commands;

/// <summary>Serving benchmark against a running service; writes docs/benchmarks/inference/results.md + results.json.</summary>
public sealed class BenchInferenceCommand : ICliCommand
{
    public string Name => "bench inference";
    public string Description => "TTFT, inter-token latency and tokens/s through the API at 1/8/32 streams, forwarding overhead, raw engine throughput, memory of 1 and 4 models.";
    public string Usage => "fts bench inference --model-folder models/safetune-tiny [--url http://127.0.0.1:8080] [--admin-key sk-fts-admin-dev] " +
                           "[--model safetune-tiny] [--postgres \"Host=127.0.0.1;Port=5544;Username=fts;Database=fts\"] [--concurrency 1,8,32] " +
                           "[--max-tokens 64] [--rounds 2] [--out docs/benchmarks/inference]";

    public async Task<int> RunAsync(CliArguments arguments, CancellationToken cancellationToken)
    {
        var (workerUrl, workerToken) = await WorkerEndpointAsync(
            arguments.Get("postgres", "Host=127.0.0.1;Port=5544;Username=fts;Database=fts"), cancellationToken);
        await InferenceBenchmark.RunAsync(new InferenceBenchmark.Settings(
            arguments.Get("url", "http://127.0.0.1:8080"),
            arguments.Get("admin-key", "sk-fts-admin-dev"),
            arguments.Get("model", "safetune-tiny"),
            arguments.Get("model-folder", Path.Combine("models", "safetune-tiny")),
            workerUrl,
            workerToken,
            arguments.Get("out", Path.Combine("docs", "benchmarks", "inference")),
            arguments.Get("concurrency", "1,8,32").Split(',').Select(int.Parse).ToList(),
            arguments.GetInt("max-tokens", 64),
            arguments.GetInt("rounds", 2)), Console.WriteLine, cancellationToken);
        return 0;
    }

    /// <summary>The most recently heartbeating inference endpoint, read from the service's database.</summary>
    private static async Task<(string Url, string Token)> WorkerEndpointAsync(string postgres, CancellationToken cancellationToken)
    {
        var options = new DbContextOptionsBuilder<FineTuneDbContext>().UseNpgsql(postgres).Options;
        await using var db = new FineTuneDbContext(options);
        var endpoint = await db.InferenceEndpoints.AsNoTracking().OrderByDescending(e => e.HeartbeatAt).FirstOrDefaultAsync(cancellationToken)
            ?? throw new InvalidOperationException("No inference endpoint is registered: is the worker host running?");
        return (endpoint.Url, endpoint.AccessToken);
    }
}
