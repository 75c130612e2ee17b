using FineTuneService.Contracts;
using FineTuneService.Contracts.Safety;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Safety.Strategies.Antidote;

/// <summary>What Antidote pruned: per weight, the entries zeroed (LoRA) or reset to base (full fine-tune).</summary>
public sealed record AntidoteReport(IReadOnlyDictionary<string, long> PrunedPerWeight)
{
    public long TotalPruned => PrunedPerWeight.Values.Sum();
}

/// <summary>
/// Antidote's pruning (Huang et al. 2024): one-shot post-fine-tuning pruning, no backward pass. Activation statistics
/// (per linear module name, the fp32 mean over tokens of x_j^2 of its input) come from a forward pass over a harmful
/// re-alignment set (harmful prompt + harmful answer).
/// <para>LoRA: prunes the adapter factors lora_A and lora_B themselves, each with the statistics of its own input
/// (the reference code runs Wanda over the adapter's linear layers). Full fine-tune: prunes the weight delta.</para>
/// </summary>
public sealed class AntidotePruner(AntidoteParams options)
{
    public AntidoteParams Options { get; } = Checks.Require(options);

    /// <summary>
    /// Prunes, in place, every 2-D LoRA factor (<c>*.lora_A.weight</c>, <c>*.lora_B.weight</c>). Statistics are looked
    /// up by the factor's module name (<c>….q_proj.lora_A</c>); lora_A may also use the adapted module's input
    /// (<c>….q_proj</c>), which is the same tensor.
    /// </summary>
    public AntidoteReport PruneLora(IEnumerable<(string Name, Parameter Parameter)> parameters, IReadOnlyDictionary<string, Tensor> inputSquaredMeans)
    {
        var pruned = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (name, parameter) in parameters)
        {
            if (!LayerParameterNames.IsLoraFactor(name) || parameter.dim() != 2) continue;
            var module = LayerParameterNames.ModuleOf(name);
            var stats = inputSquaredMeans.GetValueOrDefault(module)
                        ?? (LayerParameterNames.IsLoraA(name) ? inputSquaredMeans.GetValueOrDefault(LayerParameterNames.AdaptedModuleOf(name)) : null)
                        ?? throw new InvalidOperationException($"No activation statistics for '{module}', needed to prune '{name}'.");
            using var mask = WandaPruning.PruneInPlace(parameter, stats, Options.DenseRatio);
            pruned[name] = mask.sum().item<long>();
        }
        return new AntidoteReport(pruned);
    }

    /// <summary>
    /// Prunes, in place, the update of every decoder-layer linear weight of a full fine-tune (2-D <c>model.layers.*.weight</c>)
    /// against <paramref name="baseWeights"/> (same names).
    /// </summary>
    public AntidoteReport PruneFullFineTune(
        IEnumerable<(string Name, Parameter Parameter)> parameters,
        IReadOnlyDictionary<string, Tensor> baseWeights,
        IReadOnlyDictionary<string, Tensor> inputSquaredMeans)
    {
        var pruned = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (name, parameter) in parameters)
        {
            if (parameter.dim() != 2 || LayerParameterNames.LayerIndex(name) is null || !name.EndsWith(".weight", StringComparison.Ordinal)) continue;
            var module = LayerParameterNames.ModuleOf(name);
            var stats = inputSquaredMeans.GetValueOrDefault(module)
                        ?? throw new InvalidOperationException($"No activation statistics for '{module}', needed to prune '{name}'.");
            var baseWeight = baseWeights.GetValueOrDefault(name)
                             ?? throw new InvalidOperationException($"The base model has no weight '{name}'.");
            using var mask = WandaPruning.PruneDeltaInPlace(parameter, baseWeight, stats, Options.DenseRatio);
            pruned[name] = mask.sum().item<long>();
        }
        return new AntidoteReport(pruned);
    }
}
