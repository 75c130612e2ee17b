using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using FineTuneService.Contracts;
using FineTuneService.Contracts.Safety.Hardening;
using FineTuneService.Datasets.Corpus;
using FineTuneService.Ml.Safety.Hardening;

namespace FineTuneService.Cli.Commands;

/// <summary>
/// Hardens a base model folder offline with a registered method (Booster), with the same request validation and
/// engine code as the service's admin hardening job; each parameter of the method is an option (--lambda, --steps, …).
/// </summary>
public sealed class HardenCommand : ICliCommand
{
    public string Name => "harden";
    public string Description => "Harden a base model folder (alignment-stage, e.g. Booster) into a new model folder.";
    public string Usage => "fts harden --base <hf folder> --method booster --out <folder> [--steps 100] [--lambda 5] [--alpha 0.1] "
                           + "[--learning-rate 1e-4] [--batch-size 8] [--alignment-answers base|shipped] [--benign-share 0.5] [--seed 1] [--threads 0 (torch's default)] "
                           + "[--model-id <id of the base, default its folder name>]";

    public Task<int> RunAsync(CliArguments arguments, CancellationToken cancellationToken)
    {
        var baseFolder = Path.GetFullPath(arguments.Get("base") ?? throw new CliUsageException("--base is required."));
        var output = Path.GetFullPath(arguments.Get("out") ?? throw new CliUsageException("--out is required."));
        var methodName = arguments.Get("method", "booster");
        var baseId = arguments.Get("model-id", Path.GetFileName(baseFolder.TrimEnd(Path.DirectorySeparatorChar)));
        var method = HardeningMethods.Registry.Find(methodName)
            ?? throw new CliUsageException($"Unknown method '{methodName}': one of {string.Join(", ", HardeningMethods.Registry.Names)}.");

        // Every field of the method's parameters record is an option, with '-' for '_'.
        var parameters = new JsonObject();
        foreach (var field in method.Fields)
        {
            var value = arguments.Get(field.Name.Replace('_', '-'));
            if (value is null) continue;
            parameters[field.Name] = double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var number)
                ? JsonValue.Create(number) : JsonValue.Create(value);
        }
        HardeningRequest request;
        try
        {
            request = HardeningRequest.Parse(baseId, methodName, JsonDocument.Parse(parameters.ToJsonString()).RootElement, null);
        }
        catch (ContractViolation e)
        {
            throw new CliUsageException($"--{e.Param.Replace("params.", "").Replace('_', '-')}: {e.Message}");
        }

        BenchCommandSupport.UseThreads(arguments.GetInt("threads", 0));
        var report = ModelFolderHardening.Harden(baseFolder, output, baseId, request.Method, request.Params, new ShippedData(),
            seed: arguments.GetLong("seed", 1), progress: Console.WriteLine, cancellationToken: cancellationToken, onStep: step =>
            {
                if (step.Step % 10 == 0 || step.Step == step.Steps)
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"step {step.Step}/{step.Steps}: alignment loss {step.AlignmentLoss:F4}, harmful-loss drop {step.HarmfulLossDrop:F4}"));
            });
        Console.WriteLine($"wrote {output} ({request.Method.Name}, {report.Steps} steps; lineage in {ModelFolderHardening.LineageFile}). "
                          + $"Import it as a base model by putting it under Models:Directory (POST /v1/admin/models/import).");
        return Task.FromResult(0);
    }
}
