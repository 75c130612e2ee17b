using FineTuneService.Ml.Safety.Strategies.ProjectedGradients;
using static FineTuneService.Ml.Tests.Safety.SafetyTestTensors;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Tests.Safety;

public sealed class LowRankAndSurgeryTests
{
    [Theory]
    [InlineData(40, 30)]      // full SVD
    [InlineData(600, 700)]    // randomised range finder (600 * 700 > FullSvdMaxElements)
    public void Top_singular_vectors_recover_a_planted_subspace(int rows, int cols)
    {
        using var scope = NewDisposeScope();
        var g = Seeded(1);
        var (basis, _) = linalg.qr(Randn(g, rows, 3));
        var matrix = basis.matmul(diag(tensor(new float[] { 30, 20, 10 }))).matmul(Randn(g, 3, cols)) + 1e-3f * Randn(g, rows, cols);

        var u = LowRank.TopLeftSingularVectors(matrix, 3, Seeded(2));

        Assert.Equal(new long[] { rows, 3 }, u.shape);
        Assert.True(u.t().matmul(u).allclose(eye(3), atol: 1e-4), "basis is orthonormal");
        // Projection of the planted basis onto the found one keeps (almost) all of it: principal angles ≈ 0.
        var captured = u.t().matmul(basis).norm().item<float>();
        Assert.InRange(captured * captured, 3 - 1e-3, 3 + 1e-3);
    }

    [Fact]
    public void Rank_deficient_matrices_give_only_supported_directions()
    {
        using var scope = NewDisposeScope();
        var g = Seeded(3);
        var matrix = Randn(g, 20, 2).matmul(Randn(g, 2, 15));
        var u = LowRank.TopLeftSingularVectors(matrix, 5, Seeded(4));
        Assert.Equal(2, u.shape[1]);
    }

    [Fact]
    public void Randomised_range_finder_is_deterministic_from_the_seed()
    {
        using var scope = NewDisposeScope();
        var matrix = Randn(Seeded(5), 600, 700);
        var a = LowRank.TopLeftSingularVectors(matrix, 4, Seeded(9));
        var b = LowRank.TopLeftSingularVectors(matrix, 4, Seeded(9));
        Assert.True(BitEqual(a, b));
    }

    [Fact]
    public void PcGrad_removes_exactly_the_conflict_and_leaves_aligned_gradients_alone()
    {
        using var scope = NewDisposeScope();
        var g = Seeded(6);
        var conflicts = 0;
        for (var i = 0; i < 200; i++)
        {
            var task = Randn(g, 6, 5);
            var safety = Randn(g, 6, 5);
            var before = GradientSurgery.Inner(task, safety);
            var update = GradientSurgery.PcGrad(task, safety);
            if (before < 0)
            {
                conflicts++;
                Assert.InRange(GradientSurgery.Inner(update, safety), -1e-4, 1e-4);
                Assert.True(GradientSurgery.Inner(update, safety) >= -1e-4);
            }
            else
            {
                Assert.True(BitEqual(task, update));
            }
        }
        Assert.InRange(conflicts, 50, 150);
    }

    [Fact]
    public void Config_update_never_points_against_either_gradient_on_conflict()
    {
        using var scope = NewDisposeScope();
        var g = Seeded(7);
        for (var i = 0; i < 200; i++)
        {
            var task = Randn(g, 4, 7);
            var safety = Randn(g, 4, 7) * (float)(0.1 + i % 5);
            var update = GradientSurgery.Config(task, safety);
            if (GradientSurgery.Inner(task, safety) < 0)
            {
                Assert.True(GradientSurgery.Inner(update, safety) >= 0, $"sample {i}: <update, s> < 0");
                Assert.True(GradientSurgery.Inner(update, task) >= 0, $"sample {i}: <update, g> < 0");
                // Equal angles with both unit gradients: the defining property of the two-gradient ConFIG direction.
                var cosTask = GradientSurgery.Inner(update, task) / (update.norm().item<float>() * task.norm().item<float>());
                var cosSafety = GradientSurgery.Inner(update, safety) / (update.norm().item<float>() * safety.norm().item<float>());
                Assert.True(Math.Abs(cosTask - cosSafety) < 1e-4, $"sample {i}: cosines {cosTask} and {cosSafety} differ"); // fp32 update
            }
            else
            {
                Assert.True(BitEqual(task, update));
            }
        }
    }

    [Fact]
    public void Config_of_exactly_opposite_gradients_is_a_zero_update()
    {
        using var scope = NewDisposeScope();
        var s = Randn(Seeded(8), 3, 3);
        Assert.Equal(0f, GradientSurgery.Config(-2 * s, s).abs().max().item<float>());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Subspace_projection_zeroes_the_inner_product_with_the_in_subspace_safety_gradient(bool twoSided)
    {
        using var scope = NewDisposeScope();
        var g = Seeded(10);
        var samples = Enumerable.Range(0, 6).Select(_ => Randn(g, 12, 8)).ToArray();
        using var subspace = SafetySubspace.Estimate(samples, rank: 3, twoSided, Seeded(11));
        var inSubspaceSafety = subspace.Project(subspace.SafetyGradient);
        var checkedConflicts = 0;
        for (var i = 0; i < 100; i++)
        {
            var task = Randn(g, 12, 8);
            var update = subspace.ProjectConflicting(task);
            if (GradientSurgery.Inner(task, subspace.SafetyGradient) < 0)
            {
                checkedConflicts++;
                Assert.InRange(GradientSurgery.Inner(update, inSubspaceSafety), -1e-4, 1e-4);
                Assert.True(subspace.Project(update).norm().item<float>() < 1e-4, "nothing of the update is left inside the subspace");
            }
            else
            {
                Assert.True(BitEqual(task, update));
            }
        }
        Assert.True(checkedConflicts > 10);
    }

    [Fact]
    public void Subspace_covering_all_safety_samples_makes_conflicting_updates_non_negative_on_the_safety_gradient()
    {
        using var scope = NewDisposeScope();
        var g = Seeded(12);
        // LoRA A-shaped (r x d_in): the one-sided basis sits on the long (column) side.
        var samples = Enumerable.Range(0, 3).Select(_ => Randn(g, 4, 20)).ToArray();
        using var subspace = SafetySubspace.Estimate(samples, rank: 12, twoSided: false, Seeded(13));
        Assert.Null(subspace.Left);
        Assert.Equal(12, subspace.Rank);
        for (var i = 0; i < 100; i++)
        {
            var task = Randn(g, 4, 20);
            var before = GradientSurgery.Inner(task, subspace.SafetyGradient);
            var after = GradientSurgery.Inner(subspace.ProjectConflicting(task), subspace.SafetyGradient);
            if (before < 0) Assert.True(after >= -1e-4, $"<update, s> = {after} after projection");
        }
    }
}
