using static TorchSharp.torch;

namespace FineTuneService.Ml.Safety.Strategies.ProjectedGradients;

/// <summary>
/// Safety statistics of one weight (or LoRA factor): the mean safety-loss gradient <see cref="SafetyGradient"/> and
/// orthonormal bases of the dominant directions of the per-sample safety gradients.
/// <para>One-sided (default): the bases span the column space of [G_1 | … | G_n] on the longer side of the matrix
/// (rows for d_out ≥ d_in, else columns), so a rank-k subspace stays a small part of e.g. a LoRA A factor (r x d_in).
/// Two-sided: both a row basis U and a column basis V, and the subspace is {U X Vᵀ}.</para>
/// </summary>
public sealed class SafetySubspace : IDisposable
{
    private SafetySubspace(Tensor safetyGradient, Tensor? left, Tensor? right)
    {
        SafetyGradient = safetyGradient;
        Left = left;
        Right = right;
        SafetyNorm2 = GradientSurgery.Inner(safetyGradient, safetyGradient);
    }

    /// <summary>|s|^2, kept so a step needs no extra reduction for it.</summary>
    public double SafetyNorm2 { get; }

    /// <summary>Whether a basis was estimated (false for the mean-only statistics of PCGrad and ConFIG).</summary>
    public bool HasBasis => Left is not null || Right is not null;

    /// <summary>Mean safety-loss gradient s, same shape and dtype fp32.</summary>
    public Tensor SafetyGradient { get; }

    /// <summary>Row-space basis U (d_out x k), or null.</summary>
    public Tensor? Left { get; }

    /// <summary>Column-space basis V (d_in x k), or null.</summary>
    public Tensor? Right { get; }

    public int Rank => (int)(Left?.shape[1] ?? Right?.shape[1] ?? 0);

    /// <summary>Only the mean safety gradient s, no basis: all PCGrad and ConFIG need.</summary>
    public static SafetySubspace MeanOnly(Tensor safetyGradient) =>
        new(safetyGradient.detach().to_type(ScalarType.Float32).clone().DetachFromDisposeScope(), null, null);

    /// <summary>Builds the subspace of rank at most <paramref name="rank"/> from per-sample safety gradients.</summary>
    public static SafetySubspace Estimate(IReadOnlyList<Tensor> sampleGradients, int rank, bool twoSided, Generator generator)
    {
        if (sampleGradients.Count == 0) throw new ArgumentException("At least one safety gradient is needed.", nameof(sampleGradients));
        using var scope = NewDisposeScope();
        var matrices = sampleGradients.Select(g => GradientSurgery.AsMatrix(g.detach()).to_type(ScalarType.Float32)).ToArray();
        var mean = stack(sampleGradients.Select(g => g.detach().to_type(ScalarType.Float32)).ToArray()).mean([0]);
        long rows = matrices[0].shape[0], cols = matrices[0].shape[1];
        var useLeft = twoSided || rows >= cols;
        var useRight = twoSided || rows < cols;
        var left = useLeft ? LowRank.TopLeftSingularVectors(cat(matrices, 1), rank, generator) : null;
        var right = useRight ? LowRank.TopLeftSingularVectors(cat(matrices.Select(m => m.t()).ToArray(), 1), rank, generator) : null;
        // Long-lived state: detached from every dispose scope (the trainer calls us inside its per-step scope).
        return new SafetySubspace(mean.DetachFromDisposeScope(), left?.DetachFromDisposeScope(), right?.DetachFromDisposeScope());
    }

    /// <summary>P x: the part of <paramref name="x"/> (same shape as the weight) inside the subspace.</summary>
    public Tensor Project(Tensor x) => HasBasis
        ? GradientSurgery.ProjectOntoSubspace(x, Left, Right)
        : throw new InvalidOperationException("These safety statistics hold no subspace basis (mean-only).");

    /// <summary>
    /// The subspace edit applied by <c>projected_gradients/subspace</c>: when &lt;g, s&gt; &lt; 0, returns g - P g,
    /// otherwise g unchanged. Guarantee: the result has zero inner product with the in-subspace safety gradient P s
    /// (and with s itself when s lies in the subspace, e.g. when the rank covers all samples).
    /// </summary>
    public Tensor ProjectConflicting(Tensor g) =>
        GradientSurgery.Inner(g, SafetyGradient) < 0 ? GradientSurgery.RemoveSubspaceComponent(g, Left, Right) : g.clone();

    public void Dispose()
    {
        SafetyGradient.Dispose();
        Left?.Dispose();
        Right?.Dispose();
    }
}
