using static TorchSharp.torch;

namespace FineTuneService.Ml.Safety.Strategies.ProjectedGradients;

/// <summary>
/// Closed-form edits of a task gradient <c>g</c> against a safety gradient <c>s</c> (the gradient of the safety loss).
/// <c>g</c> and <c>s</c> conflict when &lt;g, s&gt; &lt; 0: a descent step along <c>-g</c> then raises the safety loss.
/// The plain methods return a new tensor; the <c>InPlace</c> ones (used by the trainer hook, a few kernels per tensor)
/// overwrite <c>g</c>. Aligned gradients are left unchanged.
/// </summary>
public static class GradientSurgery
{
    /// <summary>Frobenius inner product, accumulated in fp64 so the conflict test does not flip on rounding.</summary>
    public static double Inner(Tensor a, Tensor b) =>
        a.to_type(ScalarType.Float64).flatten().dot(b.to_type(ScalarType.Float64).flatten()).item<double>();

    /// <summary>PCGrad (Yu et al. 2020): on conflict, g - (&lt;g,s&gt;/|s|^2) s, which makes &lt;update, s&gt; = 0.</summary>
    public static Tensor PcGrad(Tensor g, Tensor s) => PcGrad(g, s, Inner(g, s), Inner(s, s));

    /// <summary>PCGrad with the inner products already known (the trainer hook batches them into one device sync).</summary>
    public static Tensor PcGrad(Tensor g, Tensor s, double dot, double safetyNorm2) => PcGradInPlace(g.clone(), s, dot, safetyNorm2);

    public static Tensor PcGradInPlace(Tensor g, Tensor s, double dot, double safetyNorm2) =>
        dot >= 0 || safetyNorm2 == 0 ? g : g.add_(s, alpha: -dot / safetyNorm2);

    /// <summary>
    /// ConFIG (Liu et al. 2024) for two gradients, applied on conflict. The conflict-free direction is the normalised
    /// sum of the unit gradients (the min-norm solution of ĝᵀv = ŝᵀv = 1), equal-angled to both; its length is
    /// &lt;g, v̂&gt; + &lt;s, v̂&gt;. Both projections are |·|·sqrt((1+cos)/2) &gt;= 0, so &lt;update, s&gt; &gt;= 0 always.
    /// Exactly opposite gradients have no such direction and give a zero update.
    /// </summary>
    public static Tensor Config(Tensor g, Tensor s) => Config(g, s, Inner(g, s), Math.Sqrt(Inner(g, g)), Math.Sqrt(Inner(s, s)));

    /// <summary>
    /// ConFIG from the scalars: with c = &lt;g,s&gt;/(|g||s|) the direction v = g/|g| + s/|s| has |v| = sqrt(2 + 2c), and
    /// the update (&lt;g,v̂&gt; + &lt;s,v̂&gt;) v̂ = k (g/|g| + s/|s|) with k = (|g| + |s|)(1 + c)/|v|^2 = (|g| + |s|)/2.
    /// </summary>
    public static Tensor Config(Tensor g, Tensor s, double dot, double gradientNorm, double safetyNorm) =>
        ConfigInPlace(g.clone(), s, dot, gradientNorm, safetyNorm);

    public static Tensor ConfigInPlace(Tensor g, Tensor s, double dot, double gradientNorm, double safetyNorm)
    {
        if (dot >= 0 || gradientNorm == 0 || safetyNorm == 0) return g;
        if (1 + dot / (gradientNorm * safetyNorm) <= 1e-12) return g.zero_();
        var length = (gradientNorm + safetyNorm) / 2;
        return g.mul_(length / gradientNorm).add_(s, alpha: length / safetyNorm);
    }

    /// <summary>
    /// Removes the part of <paramref name="g"/> inside the safety subspace: with a left basis U (rows) and/or a right
    /// basis V (columns), g - U Uᵀ g, g - g V Vᵀ, or two-sided g - U Uᵀ g V Vᵀ. Afterwards the projection of the update
    /// onto the subspace is zero, hence &lt;update, P s&gt; = 0 for the in-subspace safety gradient P s.
    /// Vectors (biases, norms) are treated as one-column matrices.
    /// </summary>
    public static Tensor RemoveSubspaceComponent(Tensor g, Tensor? left, Tensor? right) =>
        RemoveSubspaceComponentInPlace(g.clone(), left, right);

    public static Tensor RemoveSubspaceComponentInPlace(Tensor g, Tensor? left, Tensor? right)
    {
        using var projected = ProjectOntoSubspace(g, left, right);
        return g.sub_(projected);
    }

    /// <summary>P g: the component of <paramref name="g"/> inside the subspace spanned by the bases.</summary>
    public static Tensor ProjectOntoSubspace(Tensor g, Tensor? left, Tensor? right)
    {
        if (left is null && right is null) throw new ArgumentException("A subspace needs a left or a right basis.");
        var shape = g.shape;
        var m = AsMatrix(g).to_type(ScalarType.Float32);
        if (left is not null) m = left.matmul(left.t().matmul(m));
        if (right is not null) m = m.matmul(right).matmul(right.t());
        return m.reshape(shape);
    }

    /// <summary>A gradient as a matrix: 2-D as is, 1-D as a column, higher ranks flattened after the first dimension.</summary>
    public static Tensor AsMatrix(Tensor t) => t.dim() switch
    {
        0 => t.reshape(1, 1),
        1 => t.reshape(-1, 1),
        2 => t,
        _ => t.reshape(t.shape[0], -1),
    };
}
