using TorchSharp;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Safety.Strategies.ProjectedGradients;

/// <summary>
/// Top-k left singular vectors of a matrix: full SVD when it is small, otherwise a seeded randomised range finder
/// (Halko, Martinsson &amp; Tropp 2011, alg. 4.4 with power iterations), since TorchSharp has no <c>svd_lowrank</c>.
/// </summary>
public static class LowRank
{
    /// <summary>Matrices with at most this many elements (or a short side within k + oversampling) use full SVD.</summary>
    public const long FullSvdMaxElements = 1 << 18;

    /// <summary>Singular values below this fraction of the largest are treated as zero and their directions dropped.</summary>
    public const double RelativeRankTolerance = 1e-6;

    /// <summary>
    /// Orthonormal basis (m x r, r &lt;= k) of the dominant k-dimensional column space of <paramref name="matrix"/> (m x n).
    /// Fewer than k columns come back when the matrix has lower numerical rank, so the basis never holds arbitrary
    /// directions that the data does not support. Computed in fp32 or better.
    /// </summary>
    public static Tensor TopLeftSingularVectors(Tensor matrix, int k, Generator generator, int oversampling = 8, int powerIterations = 2)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(k, 1);
        if (matrix.dim() != 2) throw new ArgumentException($"Expected a matrix, got shape [{string.Join(", ", matrix.shape)}].", nameof(matrix));

        using var scope = NewDisposeScope();
        var a = matrix.dtype == ScalarType.Float64 ? matrix : matrix.to_type(ScalarType.Float32);
        long m = a.shape[0], n = a.shape[1];
        k = (int)Math.Min(k, Math.Min(m, n));
        var useFull = m * n <= FullSvdMaxElements || Math.Min(m, n) <= k + oversampling;
        var (u, s) = useFull ? FullSvd(a) : RandomizedSvd(a, k + oversampling, powerIterations, generator);
        var rank = NumericalRank(s, k);
        return u.narrow(1, 0, rank).contiguous().MoveToOuterDisposeScope();
    }

    private static (Tensor U, Tensor S) FullSvd(Tensor a)
    {
        var (u, s, _) = linalg.svd(a, fullMatrices: false);
        return (u, s);
    }

    private static (Tensor U, Tensor S) RandomizedSvd(Tensor a, int sketch, int powerIterations, Generator generator)
    {
        var omega = randn([a.shape[1], sketch], dtype: a.dtype, device: a.device, generator: generator);
        var q = Orthonormalize(a.matmul(omega));
        for (var i = 0; i < powerIterations; i++)
        {
            var z = Orthonormalize(a.t().matmul(q));
            q = Orthonormalize(a.matmul(z));
        }
        var (ub, s, _) = linalg.svd(q.t().matmul(a), fullMatrices: false);
        return (q.matmul(ub), s);
    }

    private static Tensor Orthonormalize(Tensor y)
    {
        var (q, _) = linalg.qr(y);
        return q;
    }

    private static int NumericalRank(Tensor singularValues, int k)
    {
        var values = singularValues.to_type(ScalarType.Float64).cpu().data<double>().ToArray();
        if (values.Length == 0 || values[0] <= 0) return 0;
        var cutoff = values[0] * RelativeRankTolerance;
        return values.Take(k).Count(v => v > cutoff);
    }
}
