using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Safety.Strategies.Merge;

/// <summary>
/// Merges of task vectors (tau_i = theta_i - theta_base, one tensor each, same shape) into one update, per tensor:
/// TIES-Merging (Yadav et al. 2023: trim, elect sign, disjoint mean) and PCB-Merging (Du et al. 2024: intra- and
/// inter-balancing, drop, rescale). Both take any number of task vectors; the <c>merge</c> strategy gives them one,
/// the fine-tune update against its base, where the sign election has a single voter and each method reduces to
/// keeping a share of the update's entries (see the safety benchmark's README). Computed in fp32.
/// </summary>
public static class TaskVectorMerging
{
    /// <summary>
    /// TIES: keep each vector's <paramref name="density"/> largest magnitudes (per tensor, as mergekit does, rather than
    /// over the whole model), elect each entry's sign as the sign of the trimmed vectors' sum (total mass), and average
    /// the trimmed entries that agree with it; entries with no agreeing vector are 0.
    /// </summary>
    public static Tensor Ties(IReadOnlyList<Tensor> taskVectors, double density)
    {
        Require(taskVectors, density, nameof(density));
        using var scope = NewDisposeScope();
        var trimmed = taskVectors.Select(t => KeepLargest(t.to_type(ScalarType.Float32), density)).ToArray();
        var elected = stack(trimmed).sum(dim: 0).sign();
        var agreeing = trimmed.Select(t => (t.sign() == elected).logical_and(t != 0).to_type(ScalarType.Float32)).ToArray();
        var sum = zeros_like(elected);
        var count = zeros_like(elected);
        for (var i = 0; i < trimmed.Length; i++)
        {
            sum.add_(trimmed[i] * agreeing[i]);
            count.add_(agreeing[i]);
        }
        return (sum / count.clamp_min(1)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// PCB: over the n vectors as rows of T (magnitudes first clamped to their 0.01%–99.99% quantiles),
    /// intra = exp(n · minmax(|T_i|)^2) and inter = tanh(T_i ⊙ Σ_j T_j); each row keeps its top <paramref name="ratio"/>
    /// of intra ⊙ inter, min-max scaled to weights (the smallest kept score weighs 0), and the merge is the weighted
    /// mean Σ w_i T_i / Σ w_i (0 where no entry is kept).
    /// </summary>
    public static Tensor Pcb(IReadOnlyList<Tensor> taskVectors, double ratio)
    {
        Require(taskVectors, ratio, nameof(ratio));
        using var scope = NewDisposeScope();
        var shape = taskVectors[0].shape;
        var rows = stack(taskVectors.Select(t => t.to_type(ScalarType.Float32).flatten()).ToArray());
        var n = rows.shape[0];
        var magnitudes = ClampToQuantiles(rows.abs(), 0.0001, 0.0001);
        var clamped = rows.sign() * magnitudes;
        var intra = (MinMaxRows(magnitudes).pow(2) * n).exp();
        var inter = (rows * rows.sum(dim: 0, keepdim: true)).tanh();
        var balance = intra * inter;
        var weights = MinMaxRows(ClampToQuantiles(balance, 1 - ratio, 0));
        var merged = (clamped * weights).sum(dim: 0) / weights.sum(dim: 0).clamp_min(1e-12);
        return merged.reshape(shape).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// theta = theta_base + lambda * merge(theta_ft - theta_base), in place on the fine-tuned parameters; returns the
    /// merged parameter names.
    /// </summary>
    public static IReadOnlyList<string> MergeInPlace(
        IEnumerable<(string Name, Parameter Parameter)> fineTuned,
        IReadOnlyDictionary<string, Tensor> baseWeights,
        double lambda,
        Func<IReadOnlyList<Tensor>, Tensor> merge)
    {
        WeightMerge.ValidateLambda(lambda);
        var merged = new List<string>();
        using var noGrad = no_grad();
        foreach (var (name, parameter) in fineTuned)
        {
            using var scope = NewDisposeScope();
            var baseWeight = (baseWeights.GetValueOrDefault(name) ?? throw new InvalidOperationException($"The base model has no weight '{name}'."))
                .to_type(ScalarType.Float32).to(parameter.device);
            var update = merge([parameter.detach().to_type(ScalarType.Float32) - baseWeight]);
            parameter.copy_((baseWeight + update * lambda).to_type(parameter.dtype));
            merged.Add(name);
        }
        return merged;
    }

    /// <summary>The entries of <paramref name="t"/> with the largest magnitudes, ceil(share · numel) of them (ties at the cut kept); the rest 0.</summary>
    private static Tensor KeepLargest(Tensor t, double share)
    {
        var magnitudes = t.abs().flatten();
        var keep = Math.Max(1, (long)Math.Ceiling(share * magnitudes.shape[0]));
        if (keep >= magnitudes.shape[0]) return t;
        var (largest, _) = magnitudes.topk((int)keep);
        var cut = largest[keep - 1];
        return t * (t.abs() >= cut).to_type(t.dtype);
    }

    /// <summary>Each row clamped to [its value at index ⌊d·low⌋, at index ⌊d·(1 − high)⌋ − 1] of the sorted row (PCB's clamp).</summary>
    private static Tensor ClampToQuantiles(Tensor rows, double low, double high)
    {
        var d = rows.shape[1];
        var (sorted, _) = rows.sort(dim: 1);
        var lower = sorted[.., Index(d, d * low)].unsqueeze(1);
        var upper = sorted[.., Index(d, d * (1 - high) - 1)].unsqueeze(1);
        return rows.maximum(lower).minimum(upper);
    }

    private static long Index(long length, double at) => Math.Clamp((long)Math.Floor(at), 0, length - 1);

    /// <summary>(x - min) / (max - min) per row; a constant row gives 0.</summary>
    private static Tensor MinMaxRows(Tensor rows)
    {
        var min = rows.amin([1], keepdim: true);
        var range = rows.amax([1], keepdim: true) - min;
        var positive = range > 0;
        return (rows - min) / where(positive, range, ones_like(range)) * positive.to_type(rows.dtype);
    }

    private static void Require(IReadOnlyList<Tensor> taskVectors, double share, string name)
    {
        if (taskVectors.Count == 0) throw new ArgumentException("At least one task vector is needed.", nameof(taskVectors));
        if (taskVectors.Any(t => !t.shape.SequenceEqual(taskVectors[0].shape)))
            throw new ArgumentException("Task vectors must have one shape.", nameof(taskVectors));
        if (!(share is > 0 and <= 1)) throw new ArgumentOutOfRangeException(name, $"{name} must be in (0, 1], got {share}.");
    }
}
