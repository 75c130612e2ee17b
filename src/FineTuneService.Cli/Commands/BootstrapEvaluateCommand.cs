using FineTuneService.Research.Bootstrap;
using Microsoft.Extensions.Logging;

namespace FineTuneService.Cli.Commands;

/// <summary>Measures an aligned base against the bootstrap acceptance targets and writes the report.</summary>
public sealed class BootstrapEvaluateCommand : ICliCommand
{
    public string Name => "bootstrap evaluate";
    public string Description => "Refusal on unseen harmful prompts, XSTest over-refusal, SST-2 accuracy before/after a task fine-tune.";
    public string Usage => "fts bootstrap evaluate [--model models/safetune-tiny] [--out docs/benchmarks/bootstrap] [--sst2-limit N] [--task-rows 500] [--task-lr 1e-4]";

    public async Task<int> RunAsync(CliArguments arguments, CancellationToken cancellationToken)
    {
        var modelDirectory = Path.GetFullPath(arguments.Get("model", Path.Combine("models", "safetune-tiny")));
        var output = Path.GetFullPath(arguments.Get("out", Path.Combine("docs", "benchmarks", "bootstrap")));
        var defaults = new BootstrapAcceptanceOptions();
        var options = defaults with
        {
            Sst2DevLimit = arguments.Has("sst2-limit") ? arguments.GetInt("sst2-limit", 0) : null,
            TaskFineTuneRows = arguments.GetInt("task-rows", defaults.TaskFineTuneRows),
            TaskLearningRate = arguments.GetDouble("task-lr", defaults.TaskLearningRate),
        };

        using var logging = BenchCommandSupport.ConsoleLogging();
        var result = await new BootstrapAcceptance(options, logging.CreateLogger("acceptance")).RunAsync(modelDirectory, cancellationToken: cancellationToken);

        Directory.CreateDirectory(output);
        var buildInfo = Path.Combine(modelDirectory, BootstrapModelBuilder.BuildInfoFile);
        var markdown = BootstrapAcceptance.ToMarkdown(result, File.Exists(buildInfo) ? await File.ReadAllTextAsync(buildInfo, cancellationToken) : null);
        await File.WriteAllTextAsync(Path.Combine(output, result.Model + ".md"), markdown, cancellationToken);
        await File.WriteAllTextAsync(Path.Combine(output, result.Model + ".json"), BootstrapAcceptance.ToJson(result), cancellationToken);
        Console.WriteLine(markdown);
        return result.MeetsTargets ? 0 : 1;
    }
}
