using FineTuneService.Contracts;
using FineTuneService.Contracts.Safety;
using FineTuneService.Ml.Safety.Strategies.ProjectedGradients;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Safety.Strategies.Merge;

/// <summary>One layer's SafeMERGE decision: cos(delta W, P delta W) against the threshold.</summary>
public sealed record SafeMergeDecision(string Weight, double Similarity, bool Merged);

/// <summary>
/// SafeMERGE's layer selection (after SafeMERGE, Djuhera et al. 2025, and Safe LoRA): layer-wise merge. For every adapted weight,
/// rho = &lt;P dW, dW&gt; / (|P dW| |dW|) where P projects onto the weight's safety subspace (dominant directions of the
/// safety-loss gradients w.r.t. that weight, see <see cref="SafetySubspace"/>). P is an orthogonal projection, so
/// rho = |P dW| / |dW|: the share of the update that lies in safety-critical directions. Layers with rho &gt;= threshold
/// are merged with the base ((1 - lambda) base + lambda ft); the others keep the fine-tuned weights.
/// </summary>
public sealed class SelectiveLayerMerger(SafeMergeParams options)
{
    public SafeMergeParams Options { get; } = Checks.Require(options);

    /// <summary>cos(dW, P dW); 0 for a zero update or an update orthogonal to the subspace.</summary>
    public static double SubspaceSimilarity(Tensor delta, SafetySubspace subspace)
    {
        using var scope = NewDisposeScope();
        var d = delta.to_type(ScalarType.Float64);
        var projected = subspace.Project(delta).to_type(ScalarType.Float64);
        var denominator = d.norm().item<double>() * projected.norm().item<double>();
        return denominator == 0 ? 0 : GradientSurgery.Inner(projected, d) / denominator;
    }

    /// <summary>Decides per weight; <paramref name="deltas"/> and <paramref name="subspaces"/> are keyed by weight name.</summary>
    public IReadOnlyList<SafeMergeDecision> Decide(IReadOnlyDictionary<string, Tensor> deltas, IReadOnlyDictionary<string, SafetySubspace> subspaces) =>
        deltas.OrderBy(d => d.Key, StringComparer.Ordinal)
            .Select(d =>
            {
                var subspace = subspaces.GetValueOrDefault(d.Key) ?? throw new InvalidOperationException($"No safety subspace for '{d.Key}'.");
                var similarity = SubspaceSimilarity(d.Value, subspace);
                return new SafeMergeDecision(d.Key, similarity, similarity >= Options.Threshold);
            })
            .ToArray();

    /// <summary>Full fine-tune: decides on W_ft - W_base and merges the selected weights in place.</summary>
    public IReadOnlyList<SafeMergeDecision> MergeFullFineTune(
        IReadOnlyList<(string Name, Parameter Parameter)> fineTuned,
        IReadOnlyDictionary<string, Tensor> baseWeights,
        IReadOnlyDictionary<string, SafetySubspace> subspaces)
    {
        using var scope = NewDisposeScope();
        var deltas = fineTuned.Where(p => subspaces.ContainsKey(p.Name)).ToDictionary(
            p => p.Name,
            p => p.Parameter.detach().to_type(ScalarType.Float32) - (baseWeights.GetValueOrDefault(p.Name) ?? throw new InvalidOperationException($"The base model has no weight '{p.Name}'.")).to_type(ScalarType.Float32));
        var decisions = Decide(deltas, subspaces);
        var merge = decisions.Where(d => d.Merged).Select(d => d.Weight).ToHashSet(StringComparer.Ordinal);
        WeightMerge.MergeInPlace(fineTuned, baseWeights, Options.Lambda, merge.Contains);
        return decisions;
    }

    /// <summary>
    /// LoRA: dW = B A per adapted module (the LoRA scaling does not change rho). <paramref name="subspaces"/> is keyed by
    /// the adapted weight name (<c>….q_proj.weight</c>). Selected modules get lora_B scaled by lambda.
    /// </summary>
    public IReadOnlyList<SafeMergeDecision> MergeLora(
        IReadOnlyList<(string Name, Parameter Parameter)> parameters,
        IReadOnlyDictionary<string, SafetySubspace> subspaces)
    {
        using var scope = NewDisposeScope();
        var factors = parameters.Where(p => LayerParameterNames.IsLoraFactor(p.Name))
            .GroupBy(p => LayerParameterNames.AdaptedModuleOf(p.Name));
        var deltas = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var module in factors)
        {
            var a = module.Single(p => LayerParameterNames.IsLoraA(p.Name)).Parameter;
            var b = module.Single(p => LayerParameterNames.IsLoraB(p.Name)).Parameter;
            deltas[module.Key + ".weight"] = b.detach().to_type(ScalarType.Float32).matmul(a.detach().to_type(ScalarType.Float32));
        }
        var decisions = Decide(deltas, subspaces);
        var merge = decisions.Where(d => d.Merged).Select(d => LayerParameterNames.ModuleOf(d.Weight)).ToHashSet(StringComparer.Ordinal);
        WeightMerge.ScaleLoraUpdates(parameters, Options.Lambda, merge.Contains);
        return decisions;
    }
}
