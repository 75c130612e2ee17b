using static TorchSharp.torch;

namespace FineTuneService.Ml.Safety.Strategies.Antidote;

/// <summary>
/// Wanda importance (Sun et al. 2023) as used by Antidote: score_ij = |W_ij| * sqrt(mean over tokens of x_j^2), where
/// x is the input of the linear layer. Antidote removes the <em>most</em> important entries of the fine-tune update on a
/// harmful re-alignment set, because those carry the harmful behaviour.
/// </summary>
public static class WandaPruning
{
    /// <summary>Scores (fp32) of a weight (d_out x d_in) given the per-input-feature mean of x^2 (d_in).</summary>
    public static Tensor Scores(Tensor weight, Tensor inputSquaredMean)
    {
        if (weight.dim() != 2) throw new ArgumentException($"Wanda scores need a matrix, got shape [{string.Join(", ", weight.shape)}].", nameof(weight));
        if (inputSquaredMean.dim() != 1 || inputSquaredMean.shape[0] != weight.shape[1])
            throw new ArgumentException($"Activation statistics have shape [{string.Join(", ", inputSquaredMean.shape)}] but the weight has {weight.shape[1]} input features.", nameof(inputSquaredMean));
        return weight.detach().to_type(ScalarType.Float32).abs() * inputSquaredMean.to_type(ScalarType.Float32).to(weight.device).sqrt().unsqueeze(0);
    }

    /// <summary>Entries pruned per row: floor(d_in * ratio), as in the reference implementations.</summary>
    public static int PrunedPerRow(long columns, double ratio) => (int)Math.Floor(columns * ratio);

    /// <summary>Boolean mask with, in every row, the <see cref="PrunedPerRow"/> highest scores set.</summary>
    public static Tensor TopScoreMask(Tensor scores, double ratio)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(ratio);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(ratio, 1.0);
        var perRow = PrunedPerRow(scores.shape[1], ratio);
        var mask = zeros(scores.shape, ScalarType.Bool, scores.device);
        if (perRow == 0) return mask;
        var (_, indices) = scores.topk(perRow, dim: 1, largest: true, sorted: false);
        return mask.scatter_(1, indices, ones(indices.shape, ScalarType.Bool, scores.device));
    }

    /// <summary>
    /// Zeroes, in place, the top-scoring <paramref name="ratio"/> of every row of <paramref name="weight"/>, scoring the
    /// weight itself. Returns the mask of zeroed entries.
    /// </summary>
    public static Tensor PruneInPlace(Tensor weight, Tensor inputSquaredMean, double ratio)
    {
        using var noGrad = no_grad();
        var mask = TopScoreMask(Scores(weight, inputSquaredMean), ratio);
        weight.masked_fill_(mask, 0);
        return mask;
    }

    /// <summary>
    /// Full fine-tune: prunes the update delta = W_ft - W_base, i.e. resets to the base value, in place, the entries of
    /// <paramref name="fineTuned"/> whose delta scores highest per row. Returns the mask of reset entries.
    /// </summary>
    public static Tensor PruneDeltaInPlace(Tensor fineTuned, Tensor baseWeight, Tensor inputSquaredMean, double ratio)
    {
        if (!fineTuned.shape.SequenceEqual(baseWeight.shape))
            throw new ArgumentException($"Base weight shape [{string.Join(", ", baseWeight.shape)}] differs from the fine-tuned one [{string.Join(", ", fineTuned.shape)}].");
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var delta = fineTuned.detach().to_type(ScalarType.Float32) - baseWeight.to_type(ScalarType.Float32).to(fineTuned.device);
        var mask = TopScoreMask(Scores(delta, inputSquaredMean), ratio);
        fineTuned.copy_(where(mask, baseWeight.to(fineTuned.device).to_type(fineTuned.dtype), fineTuned));
        return mask.MoveToOuterDisposeScope();
    }
}
