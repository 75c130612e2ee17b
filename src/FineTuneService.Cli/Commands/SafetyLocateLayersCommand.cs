using FineTuneService.Datasets.Corpus;
using FineTuneService.Datasets.Tokenization;
using FineTuneService.Ml.Models;
using FineTuneService.Ml.Safety.Strategies;
using FineTuneService.Ml.Safety.Strategies.FrozenLayers;
using static TorchSharp.torch;

namespace FineTuneService.Cli.Commands;

/// <summary>Locates a base model's safety layers and writes <c>safety_layers.json</c> next to it (read by <c>frozen_layers</c>).</summary>
public sealed class SafetyLocateLayersCommand : ICliCommand
{
    public string Name => "safety locate-layers";
    public string Description => "Locate the safety layers (cosine curves + over-rejection refinement) and write safety_layers.json.";
    public string Usage => "fts safety locate-layers --model <hf folder> [--out <folder>/safety_layers.json] [--prompts 32] [--benign 50] [--alpha 1.1] [--radius 2]";

    public Task<int> RunAsync(CliArguments arguments, CancellationToken cancellationToken)
    {
        var modelDirectory = Path.GetFullPath(arguments.Get("model") ?? throw new CliUsageException("--model is required."));
        var output = Path.GetFullPath(arguments.Get("out", Path.Combine(modelDirectory, DecoderSafetyLayers.FileName)));
        var defaults = new SafetyLayerLocatorParams();
        var options = defaults with
        {
            ScaleAlpha = arguments.GetDouble("alpha", defaults.ScaleAlpha),
            SearchRadius = arguments.GetInt("radius", defaults.SearchRadius),
        };
        var problems = options.Errors().ToArray();
        if (problems.Length > 0) throw new CliUsageException(string.Join(" ", problems));

        using var model = HuggingFaceCheckpoint.Load(modelDirectory, ScalarType.Float32).Model;
        var tokenizer = TokenizerFolder.Load(modelDirectory);
        var location = DecoderSafetyLayers.LocateShipped(model, tokenizer, new ShippedData(), options,
            prompts: arguments.GetInt("prompts", 32), benignPrompts: arguments.GetInt("benign", 50));

        Directory.CreateDirectory(Path.GetDirectoryName(output)!);
        File.WriteAllText(output, location.ToJson());
        Console.WriteLine($"safety layers {location.FirstLayer}..{location.LastLayer} of {location.Curves.Layers} " +
                          $"(candidate {location.CandidateFirstLayer}..{location.CandidateLastLayer}; benign refusals {location.BaselineRefusals}/{location.BenignPrompts} unscaled, " +
                          $"best trial {location.Trials.Max(t => t.Refusals)} with alpha {location.ScaleAlpha})");
        Console.WriteLine("gap per layer: " + string.Join(" ", location.Curves.Gap.Select(g => g.ToString("F4", System.Globalization.CultureInfo.InvariantCulture))));
        Console.WriteLine($"wrote {output}");
        return Task.FromResult(0);
    }
}
