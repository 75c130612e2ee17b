using TorchSharp.Modules;

namespace FineTuneService.Ml.Safety.Strategies.FrozenLayers;

/// <summary>
/// <c>frozen_layers</c> (SPPFT): before training, stop gradients of the attention and MLP parameters (weights, biases
/// and any LoRA factors on them) of the safety layers. Build the optimizer from the parameters that still require grad.
/// </summary>
public static class SafetyLayerFreezer
{
    /// <summary>Freezes layers <paramref name="firstLayer"/>..<paramref name="lastLayer"/> (inclusive); returns the frozen names.</summary>
    public static IReadOnlyList<string> Freeze(IEnumerable<(string Name, Parameter Parameter)> parameters, int firstLayer, int lastLayer)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(firstLayer);
        if (lastLayer < firstLayer) throw new ArgumentOutOfRangeException(nameof(lastLayer), $"Safety layer range {firstLayer}..{lastLayer} is empty.");
        var named = parameters.ToArray();
        var layers = named.Select(p => LayerParameterNames.LayerIndex(p.Name)).OfType<int>().DefaultIfEmpty(-1).Max() + 1;
        if (lastLayer >= layers) throw new ArgumentOutOfRangeException(nameof(lastLayer), $"Safety layer range {firstLayer}..{lastLayer} exceeds the model's {layers} layers.");

        var frozen = new List<string>();
        foreach (var (name, parameter) in named)
        {
            if (LayerParameterNames.LayerIndex(name) is not { } layer || layer < firstLayer || layer > lastLayer) continue;
            if (!LayerParameterNames.IsAttentionOrMlp(name)) continue;
            if (parameter.requires_grad) frozen.Add(name);
            parameter.requires_grad = false;
        }
        return frozen;
    }
}
