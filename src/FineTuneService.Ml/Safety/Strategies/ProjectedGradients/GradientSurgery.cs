using static TorchSharp.torch;

namespace FineTuneService.Ml.Safety.Strategies.ProjectedGradients;

/// <summary>
/// Closed-form edits of a task gradient <c>g</c> against a safety gradient <c>s</c> (the gradient of the safety loss).
/// <c>g</c> and <c>s</c> conflict when &lt;g, s&gt; &lt; 0: a descent step along <c>-g</c> then raises the safety loss.
/// All methods return a new tensor and leave their inputs untouched; aligned gradients come back unchanged.
/// </summary>
public static class GradientSurgery
{
    /// <summary>Frobenius inner product, accumulated in fp64 so the conflict test does not flip on rounding.</summary>
    public static double Inner(Tensor a, Tensor b) =>
        a.to_type(ScalarType.Float64).flatten().dot(b.to_type(ScalarType.Float64).flatten()).item<double>();

    /// <summary>PCGrad (Yu et al. 2020): on conflict, g - (&lt;g,s&gt;/|s|^2) s, which makes &lt;update, s&gt; = 0.</summary>
    public static Tensor PcGrad(Tensor g, Tensor s)
    {
        var dot = Inner(g, s);
        var norm2 = Inner(s, s);
        if (dot >= 0 || norm2 == 0) return g.clone();
        return (g.to_type(ScalarType.Float64) - (dot / norm2) * s.to_type(ScalarType.Float64)).to_type(g.dtype);
    }

    /// <summary>
    /// ConFIG (Liu et al. 2024) for two gradients, applied on conflict. The conflict-free direction is the normalised
    /// sum of the unit gradients (the min-norm solution of ĝᵀv = ŝᵀv = 1), equal-angled to both; its length is
    /// &lt;g, v̂&gt; + &lt;s, v̂&gt;. Both projections are |·|·sqrt((1+cos)/2) &gt;= 0, so &lt;update, s&gt; &gt;= 0 always.
    /// Exactly opposite gradients have no such direction and give a zero update.
    /// </summary>
    public static Tensor Config(Tensor g, Tensor s)
    {
        var dot = Inner(g, s);
        if (dot >= 0) return g.clone();
        var g64 = g.to_type(ScalarType.Float64);
        var s64 = s.to_type(ScalarType.Float64);
        var gNorm = g64.norm().item<double>();
        var sNorm = s64.norm().item<double>();
        if (gNorm == 0 || sNorm == 0) return g.clone();
        var direction = g64 / gNorm + s64 / sNorm;
        var directionNorm = direction.norm().item<double>();
        if (directionNorm <= 1e-12) return zeros_like(g);
        direction /= directionNorm;
        var length = Inner(g64, direction) + Inner(s64, direction);
        return (direction * length).to_type(g.dtype);
    }

    /// <summary>
    /// Removes the part of <paramref name="g"/> inside the safety subspace: with a left basis U (rows) and/or a right
    /// basis V (columns), g - U Uᵀ g, g - g V Vᵀ, or two-sided g - U Uᵀ g V Vᵀ. Afterwards the projection of the update
    /// onto the subspace is zero, hence &lt;update, P s&gt; = 0 for the in-subspace safety gradient P s.
    /// Vectors (biases, norms) are treated as one-column matrices.
    /// </summary>
    public static Tensor RemoveSubspaceComponent(Tensor g, Tensor? left, Tensor? right) =>
        (g.to_type(ScalarType.Float32) - ProjectOntoSubspace(g, left, right)).to_type(g.dtype);

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
