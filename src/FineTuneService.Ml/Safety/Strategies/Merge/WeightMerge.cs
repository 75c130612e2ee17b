using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Safety.Strategies.Merge;

/// <summary>
/// <c>merge</c>: pre/post-tuning interpolation theta = (1 - lambda) * theta_base + lambda * theta_ft. Computed as written
/// (not as a lerp), so lambda = 0 gives the base weights bit for bit and lambda = 1 the fine-tuned ones.
/// </summary>
public static class WeightMerge
{
    public static Tensor Interpolate(Tensor baseWeight, Tensor fineTuned, double lambda)
    {
        if (!baseWeight.shape.SequenceEqual(fineTuned.shape))
            throw new ArgumentException($"Cannot merge shapes [{string.Join(", ", baseWeight.shape)}] and [{string.Join(", ", fineTuned.shape)}].");
        using var scope = NewDisposeScope();
        var merged = baseWeight.to_type(ScalarType.Float32).to(fineTuned.device) * (1.0 - lambda) + fineTuned.to_type(ScalarType.Float32) * lambda;
        return merged.to_type(fineTuned.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Full fine-tune: merges, in place, every parameter selected by <paramref name="include"/> (all by default) with
    /// its base counterpart. Returns the merged parameter names.
    /// </summary>
    public static IReadOnlyList<string> MergeInPlace(
        IEnumerable<(string Name, Parameter Parameter)> fineTuned,
        IReadOnlyDictionary<string, Tensor> baseWeights,
        double lambda,
        Func<string, bool>? include = null)
    {
        ValidateLambda(lambda);
        var merged = new List<string>();
        using var noGrad = no_grad();
        foreach (var (name, parameter) in fineTuned)
        {
            if (include is not null && !include(name)) continue;
            var baseWeight = baseWeights.GetValueOrDefault(name) ?? throw new InvalidOperationException($"The base model has no weight '{name}'.");
            using var value = Interpolate(baseWeight, parameter, lambda);
            parameter.copy_(value);
            merged.Add(name);
        }
        return merged;
    }

    /// <summary>
    /// LoRA: the base model has no adapter, so (1 - lambda) W + lambda (W + s B A) = W + lambda s B A, i.e. scale lora_B by
    /// lambda. Scales, in place, the lora_B factors of the adapted modules selected by <paramref name="includeModule"/>.
    /// Returns the adapted module names.
    /// </summary>
    public static IReadOnlyList<string> ScaleLoraUpdates(
        IEnumerable<(string Name, Parameter Parameter)> parameters,
        double lambda,
        Func<string, bool>? includeModule = null)
    {
        ValidateLambda(lambda);
        var merged = new List<string>();
        using var noGrad = no_grad();
        foreach (var (name, parameter) in parameters)
        {
            if (!LayerParameterNames.IsLoraB(name)) continue;
            var module = LayerParameterNames.AdaptedModuleOf(name);
            if (includeModule is not null && !includeModule(module)) continue;
            parameter.mul_(lambda);
            merged.Add(module);
        }
        return merged;
    }

    internal static void ValidateLambda(double lambda)
    {
        if (lambda is < 0 or > 1 || double.IsNaN(lambda)) throw new ArgumentOutOfRangeException(nameof(lambda), $"lambda must be in [0, 1], got {lambda}.");
    }
}
