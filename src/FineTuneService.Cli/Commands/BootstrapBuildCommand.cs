using FineTuneService.Research.Bootstrap;
using Microsoft.Extensions.Logging;

namespace FineTuneService.Cli.Commands;

/// <summary>Builds the bootstrap aligned base model (safetune-tiny) from the shipped data, deterministically.</summary>
public sealed class BootstrapBuildCommand : ICliCommand
{
    public string Name => "bootstrap build";
    public string Description => "Train the bootstrap aligned model from scratch (about 12 minutes on 2 cores).";
    public string Usage =>
        "fts bootstrap build [--out models/safetune-tiny] [--size tiny|test] [--options options.json|build_info.json] [--max-steps N] [--seed N] [--first-phase DIR]\n" +
        "  --options      start from these options instead of the preset (a missing field keeps its default)\n" +
        "  --first-phase  reuse the first phase from DIR when it matches exactly, else save it there";

    public Task<int> RunAsync(CliArguments arguments, CancellationToken cancellationToken)
    {
        var preset = arguments.Get("options") is { } optionsFile
            ? BootstrapModelOptions.FromJson(File.ReadAllText(optionsFile))
            : arguments.Get("size", "tiny") switch
            {
                "tiny" => BootstrapModelOptions.SafetuneTiny,
                "test" => BootstrapModelOptions.TestSize,
                var other => throw new CliUsageException($"Unknown --size '{other}' (tiny, test)."),
            };
        var options = preset with
        {
            MaxSteps = arguments.Has("max-steps") ? arguments.GetInt("max-steps", 0) : preset.MaxSteps,
            Seed = arguments.GetLong("seed", preset.Seed),
        };
        var output = Path.GetFullPath(arguments.Get("out", Path.Combine("models", options.Name)));

        using var logging = BenchCommandSupport.ConsoleLogging();
        var result = new BootstrapModelBuilder(options, logging.CreateLogger("bootstrap")).Build(output, firstPhaseDirectory: arguments.Get("first-phase") is { } cache ? Path.GetFullPath(cache) : null,
            cancellationToken: cancellationToken);
        Console.WriteLine($"{options.Name}: {result.Parameters:N0} parameters, {result.Steps} steps, loss {result.FirstLoss:F3} -> {result.FinalLoss:F3}, " +
                          $"validation {result.ValidationLoss:F3}, {result.TokensPerSecond:F0} tok/s, {result.Duration:hh\\:mm\\:ss} -> {output}");
        return Task.FromResult(0);
    }
}
