using FineTuneService.Ml.Safety.Strategies.FrozenLayers;
using FineTuneService.Ml.Training;
using Microsoft.Extensions.Logging;

namespace FineTuneService.Ml.Safety.Strategies.Hooks;

/// <summary><c>frozen_layers</c> in the trainer: freezes the safety layers' attention and MLP before the optimizer is built.</summary>
public sealed class FrozenLayersHook(int firstLayer, int lastLayer) : ITrainingStrategy
{
    public int FirstLayer { get; } = firstLayer;
    public int LastLayer { get; } = lastLayer;

    /// <summary>Names frozen by the last <see cref="BeforeTraining"/>.</summary>
    public IReadOnlyList<string> Frozen { get; private set; } = [];

    public void BeforeTraining(TrainingContext context)
    {
        Frozen = SafetyLayerFreezer.Freeze(context.Model.named_parameters().Select(p => (p.name, p.parameter)), FirstLayer, LastLayer);
        context.Logger.LogInformation("frozen_layers: froze {Count} tensors of layers {First}..{Last}", Frozen.Count, FirstLayer, LastLayer);
    }
}
