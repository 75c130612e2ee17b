using FineTuneService.Contracts.Safety;
using FineTuneService.Ml.Safety.Strategies;
using FineTuneService.Ml.Safety.Strategies.Merge;
using FineTuneService.Ml.Safety.Strategies.ProjectedGradients;
using TorchSharp.Modules;
using static FineTuneService.Ml.Tests.Safety.SafetyTestTensors;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Tests.Safety;

public sealed class MergeTests
{
    private static (List<(string Name, Parameter Parameter)> FineTuned, Dictionary<string, Tensor> Base) FullFineTune(int seed)
    {
        var g = Seeded(seed);
        var fineTuned = DecoderParameters(layers: 2, hidden: 6, g);
        var baseWeights = fineTuned.ToDictionary(p => p.Name, p => (p.Parameter.detach() - 0.3f * Randn(g, p.Parameter.shape)).contiguous());
        return (fineTuned, baseWeights);
    }

    [Fact]
    public void Lambda_zero_gives_the_base_and_lambda_one_the_fine_tuned_model_exactly()
    {
        using var scope = NewDisposeScope();
        var (zero, baseWeights) = FullFineTune(41);
        WeightMerge.MergeInPlace(zero, baseWeights, 0.0);
        Assert.All(zero, p => Assert.True(BitEqual(p.Parameter, baseWeights[p.Name]), p.Name));

        var (one, _) = FullFineTune(41);
        var fineTuned = one.Select(p => p.Parameter.detach().clone()).ToArray();
        WeightMerge.MergeInPlace(one, baseWeights, 1.0);
        for (var i = 0; i < one.Count; i++) Assert.True(BitEqual(one[i].Parameter, fineTuned[i]));

        var (half, _) = FullFineTune(41);
        WeightMerge.MergeInPlace(half, baseWeights, 0.5);
        for (var i = 0; i < half.Count; i++)
            Assert.True(half[i].Parameter.allclose((fineTuned[i] + baseWeights[half[i].Name]) / 2, atol: 1e-6));
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.3)]
    [InlineData(1.0)]
    public void Lora_merge_equals_interpolating_the_effective_weights(double lambda)
    {
        using var scope = NewDisposeScope();
        var parameters = DecoderParameters(layers: 1, hidden: 6, Seeded(42), lora: true);
        Tensor Effective(string module) =>
            parameters.Single(p => p.Name == module + ".weight").Parameter
            + parameters.Single(p => p.Name == module + ".lora_B.weight").Parameter.matmul(parameters.Single(p => p.Name == module + ".lora_A.weight").Parameter);
        const string q = "model.layers.0.self_attn.q_proj";
        var baseWeight = parameters.Single(p => p.Name == q + ".weight").Parameter.detach().clone();
        var fineTuned = Effective(q).detach().clone();

        var merged = WeightMerge.ScaleLoraUpdates(parameters, lambda);

        Assert.Equal(3, merged.Count);
        Assert.True(Effective(q).allclose(WeightMerge.Interpolate(baseWeight, fineTuned, lambda), atol: 1e-5));
        if (lambda == 0) Assert.True(BitEqual(Effective(q), baseWeight));
    }

    [Fact]
    public void Merge_rejects_lambda_outside_the_unit_interval()
    {
        var (ft, baseWeights) = FullFineTune(43);
        Assert.Throws<ArgumentOutOfRangeException>(() => WeightMerge.MergeInPlace(ft, baseWeights, 1.5));
    }

    [Fact]
    public void SafeMerge_merges_only_layers_whose_update_lies_in_the_safety_subspace()
    {
        using var scope = NewDisposeScope();
        var g = Seeded(44);
        // Safety subspace of each weight: spanned by the first two coordinate rows (one-sided left basis, 8 x 6 weights).
        var samples = Enumerable.Range(0, 4).Select(_ => cat([Randn(g, 2, 6), zeros(6, 6)], 0)).ToArray();
        const string inside = "model.layers.0.mlp.up_proj.weight", outside = "model.layers.1.mlp.up_proj.weight";
        var subspaces = new Dictionary<string, SafetySubspace>
        {
            [inside] = SafetySubspace.Estimate(samples, 2, false, Seeded(1)),
            [outside] = SafetySubspace.Estimate(samples, 2, false, Seeded(1)),
        };
        var baseWeights = new Dictionary<string, Tensor> { [inside] = Randn(g, 8, 6), [outside] = Randn(g, 8, 6) };
        var fineTuned = new List<(string Name, Parameter Parameter)>
        {
            (inside, new Parameter(baseWeights[inside] + cat([Randn(g, 2, 6), 0.1f * Randn(g, 6, 6)], 0))),
            (outside, new Parameter(baseWeights[outside] + cat([0.1f * Randn(g, 2, 6), Randn(g, 6, 6)], 0))),
        };
        var outsideBefore = fineTuned[1].Parameter.detach().clone();
        var insideBefore = fineTuned[0].Parameter.detach().clone();

        var decisions = new SelectiveLayerMerger(new SafeMergeParams(Lambda: 0.5)).MergeFullFineTune(fineTuned, baseWeights, subspaces);

        var byName = decisions.ToDictionary(d => d.Weight);
        Assert.True(byName[inside].Merged && byName[inside].Similarity > 0.9, $"inside: {byName[inside].Similarity}");
        Assert.True(!byName[outside].Merged && byName[outside].Similarity < 0.35, $"outside: {byName[outside].Similarity}");
        Assert.True(BitEqual(fineTuned[1].Parameter, outsideBefore));
        Assert.True(fineTuned[0].Parameter.allclose((insideBefore + baseWeights[inside]) / 2, atol: 1e-6));
    }

    [Fact]
    public void SafeMerge_similarity_is_one_inside_and_zero_orthogonal_to_the_subspace()
    {
        using var scope = NewDisposeScope();
        var g = Seeded(45);
        var samples = Enumerable.Range(0, 3).Select(_ => Randn(g, 10, 4)).ToArray();
        using var subspace = SafetySubspace.Estimate(samples, 2, false, Seeded(2));
        var x = Randn(g, 10, 4);
        var inside = subspace.Project(x);
        Assert.Equal(1.0, SelectiveLayerMerger.SubspaceSimilarity(inside, subspace), 5);
        Assert.Equal(0.0, SelectiveLayerMerger.SubspaceSimilarity(x - inside, subspace), 5);
    }

    [Fact]
    public void SafeMerge_on_lora_scales_lora_B_of_the_selected_modules_only()
    {
        using var scope = NewDisposeScope();
        var g = Seeded(46);
        var parameters = DecoderParameters(layers: 1, hidden: 6, g, lora: true);
        Tensor Factor(string module, string factor) => parameters.Single(p => p.Name == $"{module}.{factor}.weight").Parameter;
        const string q = "model.layers.0.self_attn.q_proj", up = "model.layers.0.mlp.up_proj", o = "model.layers.0.self_attn.o_proj";
        // Subspace for q_proj built from its own update, so it is fully inside; the others get unrelated subspaces.
        var qDelta = Factor(q, "lora_B").matmul(Factor(q, "lora_A")).detach();
        var subspaces = new Dictionary<string, SafetySubspace>
        {
            [q + ".weight"] = SafetySubspace.Estimate([qDelta], 2, false, Seeded(3)),
            [up + ".weight"] = SafetySubspace.Estimate([Randn(g, 6, 6)], 1, false, Seeded(3)),
            [o + ".weight"] = SafetySubspace.Estimate([Randn(g, 6, 6)], 1, false, Seeded(3)),
        };
        var upBefore = Factor(up, "lora_B").detach().clone();
        var qBefore = Factor(q, "lora_B").detach().clone();

        var decisions = new SelectiveLayerMerger(new SafeMergeParams(Lambda: 0.25, Threshold: 0.99)).MergeLora(parameters, subspaces);

        Assert.True(decisions.Single(d => d.Weight == q + ".weight").Merged);
        Assert.True(Factor(q, "lora_B").allclose(qBefore * 0.25f));
        Assert.False(decisions.Single(d => d.Weight == up + ".weight").Merged);
        Assert.True(BitEqual(Factor(up, "lora_B"), upBefore));
    }
}
