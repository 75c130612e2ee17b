using FineTuneService.Ml.Safety.Strategies.Merge;
using static FineTuneService.Ml.Tests.Safety.SafetyTestTensors;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Tests.Safety;

public sealed class TaskVectorMergingTests
{
    private static float[] Values(Tensor t) => t.to_type(ScalarType.Float32).data<float>().ToArray();

    [Fact]
    public void Ties_trims_elects_the_sign_by_total_mass_and_averages_only_the_agreeing_entries()
    {
        using var scope = NewDisposeScope();
        // Density 0.75 keeps three of four entries per vector: the smallest magnitude (0.1, 0.2) goes.
        var a = tensor(new[] { 3f, -1f, 0.1f, 2f });
        var b = tensor(new[] { 1f, 4f, -2f, 0.2f });
        var c = tensor(new[] { -1f, 2f, -3f, 1f });
        var merged = Values(TaskVectorMerging.Ties([a, b, c], density: 0.75));
        // Entry 0: trimmed 3, 1, -1 -> mass +3, agreeing 3 and 1 -> 2. Entry 1: -1, 4, 2 -> mass +5, agreeing 4, 2 -> 3.
        // Entry 2: a trimmed, -2, -3 -> -2.5. Entry 3: 2, b trimmed, 1 -> 1.5.
        Assert.Equal([2f, 3f, -2.5f, 1.5f], merged);
    }

    [Fact]
    public void Ties_of_one_update_keeps_its_largest_entries_per_tensor_and_zeroes_the_rest()
    {
        using var scope = NewDisposeScope();
        var update = Randn(Seeded(3), 10, 20);
        var merged = TaskVectorMerging.Ties([update], density: 0.2);
        var kept = merged != 0;
        Assert.Equal(40, kept.sum().item<long>());
        Assert.True(merged.masked_select(kept).allclose(update.masked_select(kept), rtol: 0, atol: 0));
        Assert.True(update.abs().masked_select(kept).min().item<float>() >= update.abs().masked_select(kept.logical_not()).max().item<float>());
    }

    [Fact]
    public void Pcb_drops_the_entries_that_compete_with_the_others_and_keeps_the_agreeing_ones()
    {
        using var scope = NewDisposeScope();
        var g = Seeded(5);
        var shared = Randn(g, 400);
        var a = shared + 0.1f * Randn(g, 400);
        var b = shared + 0.1f * Randn(g, 400);
        // A third update pointing against the other two on the first half of the entries.
        var c = cat([-shared[..200], shared[200..]]) + 0.1f * Randn(g, 400);
        var merged = TaskVectorMerging.Pcb([a, b, c], ratio: 0.5);

        Assert.True(merged.isfinite().all().item<bool>());
        // Where c disagrees the merge follows the majority (a and b), and it does so at the shared entries' scale.
        var firstHalf = merged[..200];
        var agreeing = (firstHalf.sign() == shared[..200].sign()).logical_or(firstHalf == 0).to_type(ScalarType.Float32).mean().item<float>();
        Assert.True(agreeing > 0.95f, $"{agreeing:P0} of the contested entries follow the majority");
        // Every kept entry is a weighted mean of the (clamped) inputs, so it lies within their range.
        var low = stack([a, b, c]).amin([0]) - 1e-5f;
        var high = stack([a, b, c]).amax([0]) + 1e-5f;
        Assert.True(merged.ge(low).logical_or(merged == 0).all().item<bool>() && merged.le(high).logical_or(merged == 0).all().item<bool>());
    }

    [Fact]
    public void Pcb_of_one_update_keeps_about_its_ratio_of_entries_unscaled()
    {
        using var scope = NewDisposeScope();
        var update = Randn(Seeded(6), 50, 40);
        var merged = TaskVectorMerging.Pcb([update], ratio: 0.1);
        var kept = merged != 0;
        // Top 10% by score; the lowest kept score weighs 0 after PCB's min-max scaling, so one fewer can survive.
        Assert.InRange(kept.sum().item<long>(), 195, 200);
        // The surviving entries are the update's own values (clamped only at the extreme 0.01% quantiles).
        var inner = kept.logical_and(update.abs() < update.abs().max() * 0.99f);
        Assert.True(merged.masked_select(inner).allclose(update.masked_select(inner), atol: 1e-6));
    }

    [Fact]
    public void Merging_in_place_with_lambda_zero_gives_the_base_and_ties_at_full_density_the_fine_tune()
    {
        using var scope = NewDisposeScope();
        var g = Seeded(7);
        var fineTuned = DecoderParameters(layers: 1, hidden: 6, g);
        var original = fineTuned.ToDictionary(p => p.Name, p => p.Parameter.detach().clone());
        var baseWeights = fineTuned.ToDictionary(p => p.Name, p => (p.Parameter.detach() - 0.3f * Randn(g, p.Parameter.shape)).contiguous());

        TaskVectorMerging.MergeInPlace(fineTuned, baseWeights, 1.0, t => TaskVectorMerging.Ties(t, density: 1.0));
        Assert.All(fineTuned, p => Assert.True(p.Parameter.allclose(original[p.Name], atol: 1e-6), p.Name));

        TaskVectorMerging.MergeInPlace(fineTuned, baseWeights, 0.0, t => TaskVectorMerging.Pcb(t, ratio: 0.5));
        Assert.All(fineTuned, p => Assert.True(p.Parameter.allclose(baseWeights[p.Name], atol: 1e-6), p.Name));
    }
}
