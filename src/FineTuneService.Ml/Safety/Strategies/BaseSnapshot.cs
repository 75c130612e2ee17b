using TorchSharp;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Safety.Strategies;

/// <summary>Copies of a full fine-tune's trainable weights taken before training, for strategies that compare with the base.</summary>
internal static class BaseSnapshot
{
    /// <summary>Copies of the trainable weights for a full fine-tune, or null when LoRA factors are what trains.</summary>
    public static Dictionary<string, Tensor>? OfFullFineTune(nn.Module model)
    {
        var trainable = model.named_parameters().Where(p => p.parameter.requires_grad).ToArray();
        if (trainable.Any(p => LayerParameterNames.IsLoraFactor(p.name))) return null;
        return trainable.ToDictionary(p => p.name, p => p.parameter.detach().clone().DetachFromDisposeScope(), StringComparer.Ordinal);
    }

    public static void Dispose(Dictionary<string, Tensor>? weights)
    {
        if (weights is null) return;
        foreach (var w in weights.Values) w.Dispose();
    }
}
