using FineTuneService.Contracts.Safety;
using FineTuneService.Ml.Training;
using Microsoft.Extensions.Logging;

namespace FineTuneService.Ml.Safety.Strategies.FrozenLayers;

/// <summary><c>frozen_layers</c> in the trainer: freezes the safety layers' attention and MLP before the optimizer is built.</summary>
public sealed class FrozenLayersTrainingStrategy(int firstLayer, int lastLayer) : ISafetyTrainingStrategy<FrozenLayersParams>
{
    private static readonly string Name = SafetyStrategies.Registry.For<FrozenLayersParams>().Name;

    /// <summary>The requested range, or else the base model's located safety layers.</summary>
    public static ITrainingStrategy Create(FrozenLayersParams parameters, EncodedSafetyData data)
    {
        var (first, last) = parameters is { FirstLayer: { } f, LastLayer: { } l }
            ? (f, l)
            : data.SafetyLayers is { } located
                ? (located.FirstLayer, located.LastLayer)
                : throw new SafetyStrategyConfigurationException($"{Name} needs first_layer and last_layer, or safety layers located for this base model.");
        return new FrozenLayersTrainingStrategy(first, last);
    }

    public int FirstLayer { get; } = firstLayer;
    public int LastLayer { get; } = lastLayer;

    /// <summary>Names frozen by the last <see cref="BeforeTraining"/>.</summary>
    public IReadOnlyList<string> Frozen { get; private set; } = [];

    public void BeforeTraining(TrainingContext context)
    {
        Frozen = SafetyLayerFreezer.Freeze(context.Model.named_parameters().Select(p => (p.name, p.parameter)), FirstLayer, LastLayer);
        context.Logger.LogInformation("{Strategy}: froze {Count} tensors of layers {First}..{Last}", Name, Frozen.Count, FirstLayer, LastLayer);
    }
}
