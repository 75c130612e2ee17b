using FineTuneService.Ml.Safety.Strategies;
using FineTuneService.Ml.Safety.Strategies.FrozenLayers;
using TorchSharp.Modules;
using static FineTuneService.Ml.Tests.Safety.SafetyTestTensors;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Tests.Safety;

public sealed class FrozenLayersTests
{
    private const int Layers = 10, Hidden = 16;

    /// <summary>
    /// Hidden states where malicious prompts carry an extra direction whose weight is 0 up to layer 2, 0.5 at layer 3
    /// and 1 from layer 4: the N-M separation emerges exactly in layers 3..4.
    /// </summary>
    private static Tensor SyntheticStates(int prompts, bool malicious, Generator g)
    {
        var shared = zeros(Layers, Hidden).index_fill_(1, tensor(0L), 4f);
        var harmful = zeros(Layers, Hidden).index_fill_(1, tensor(1L), 4f);
        var weights = tensor(Enumerable.Range(0, Layers).Select(l => l <= 2 ? 0f : l == 3 ? 0.5f : 1f).ToArray()).unsqueeze(1);
        return stack(Enumerable.Range(0, prompts)
            .Select(_ => shared + 0.1f * Randn(g, Layers, Hidden) + (malicious ? weights * harmful : zeros(Layers, Hidden)))
            .ToArray());
    }

    [Fact]
    public void Curves_show_the_mixed_pairs_separating_where_the_harmful_direction_appears()
    {
        using var scope = NewDisposeScope();
        var g = Seeded(51);
        var curves = SafetyLayerLocator.Curves(SyntheticStates(6, false, g), SyntheticStates(6, true, g));

        Assert.Equal(Layers, curves.Layers);
        for (var l = 0; l <= 2; l++) Assert.InRange(Math.Abs(curves.Gap[l]), 0, 0.1 * curves.Gap.Max());
        for (var l = 4; l < Layers; l++) Assert.True(curves.NormalMalicious[l] < curves.NormalNormal[l] && curves.NormalMalicious[l] < curves.MaliciousMalicious[l]);
        Assert.Equal((3, 4), new SafetyLayerLocator(new SafetyLayerLocatorParams()).CandidateRange(curves));
    }

    [Fact]
    public void Curves_average_over_distinct_pairs_only()
    {
        using var scope = NewDisposeScope();
        // Two normal prompts at right angles: N-N must be 0 (the self-similarity 1 on the diagonal is excluded).
        var normal = tensor(new float[] { 1, 0, 0, 1 }).reshape(2, 1, 2);
        var malicious = tensor(new float[] { 1, 0, 1, 0 }).reshape(2, 1, 2);
        var curves = SafetyLayerLocator.Curves(normal, malicious);
        Assert.Equal(0.0, curves.NormalNormal[0], 9);
        Assert.Equal(1.0, curves.MaliciousMalicious[0], 9);
        Assert.Equal(0.5, curves.NormalMalicious[0], 9);
    }

    [Fact]
    public void No_separation_is_reported_instead_of_inventing_a_range()
    {
        using var scope = NewDisposeScope();
        var g = Seeded(52);
        var states = SyntheticStates(4, false, g);
        var curves = SafetyLayerLocator.Curves(states, states);
        Assert.Throws<InvalidOperationException>(() => new SafetyLayerLocator(new SafetyLayerLocatorParams()).CandidateRange(curves));
    }

    /// <summary>Over-rejection planted on layers 3..5: in-range layers add two refusals, out-of-range ones cost one.</summary>
    private static int PlantedRefusals(int first, int last)
    {
        var layers = Enumerable.Range(first, last - first + 1).ToArray();
        return Math.Max(0, 2 * layers.Count(l => l is >= 3 and <= 5) - layers.Count(l => l is < 3 or > 5));
    }

    [Fact]
    public void Refinement_moves_the_bounds_to_the_range_with_most_over_rejection()
    {
        var locator = new SafetyLayerLocator(new SafetyLayerLocatorParams(SearchRadius: 2));
        var (first, last, trials) = locator.Refine((3, 4), Layers, PlantedRefusals);
        Assert.Equal((3, 5), (first, last));
        Assert.Equal(trials.Count, trials.Select(t => (t.FirstLayer, t.LastLayer)).Distinct().Count());
        Assert.All(trials, t => Assert.InRange(t.FirstLayer, 1, Layers - 2));
        Assert.All(trials, t => Assert.InRange(t.LastLayer, t.FirstLayer, Layers - 2));
    }

    [Fact]
    public void Refinement_keeps_the_candidate_when_scaling_changes_nothing_and_stays_off_the_outer_layers()
    {
        var locator = new SafetyLayerLocator(new SafetyLayerLocatorParams(SearchRadius: 3));
        Assert.Equal((4, 6), Pick(locator.Refine((4, 6), Layers, (_, _) => 0)));
        Assert.Equal((1, 8), Pick(locator.Refine((0, 9), Layers, (_, _) => 0)));
        static (int, int) Pick((int First, int Last, IReadOnlyList<OverRejectionTrial> _) r) => (r.First, r.Last);
    }

    [Fact]
    public void Locate_scales_the_right_weights_during_trials_restores_them_and_round_trips_as_json()
    {
        using var scope = NewDisposeScope();
        var g = Seeded(53);
        var parameters = DecoderParameters(Layers, hidden: 4, g);
        var originals = parameters.Select(p => p.Parameter.detach().clone()).ToArray();
        var normal = SyntheticStates(5, false, g);
        var malicious = SyntheticStates(5, true, g);
        var benign = Enumerable.Range(0, 8).Select(i => $"benign {i}").ToArray();

        // The "model" refuses benign prompt i when the planted over-rejection of the currently scaled layers exceeds i.
        // Which layers are scaled is read from the live weights, so the test sees what the locator really did.
        string Complete(string prompt)
        {
            var scaled = Enumerable.Range(0, Layers).Where(l =>
            {
                var index = parameters.FindIndex(p => p.Name == $"model.layers.{l}.mlp.up_proj.weight");
                return !parameters[index].Parameter.allclose(originals[index]);
            }).ToArray();
            foreach (var l in scaled)
            {
                var index = parameters.FindIndex(p => p.Name == $"model.layers.{l}.self_attn.q_proj.weight");
                Assert.True(parameters[index].Parameter.allclose(originals[index] * 1.1f), "attention weights are scaled by alpha");
                var norm = parameters.FindIndex(p => p.Name == $"model.layers.{l}.input_layernorm.weight");
                Assert.True(BitEqual(parameters[norm].Parameter, originals[norm]), "norms are not part of attention/MLP");
            }
            var refusals = scaled.Length == 0 ? 0 : PlantedRefusals(scaled.Min(), scaled.Max());
            return int.Parse(prompt.Split(' ')[1]) < refusals ? "I cannot help with that." : "Sure.";
        }

        var location = new SafetyLayerLocator(new SafetyLayerLocatorParams()).Locate(
            Enumerable.Range(0, 5).Select(i => $"normal {i}").ToArray(),
            Enumerable.Range(0, 5).Select(i => $"malicious {i}").ToArray(),
            benign,
            prompt => (prompt.StartsWith("normal", StringComparison.Ordinal) ? normal : malicious)[int.Parse(prompt.Split(' ')[1])],
            parameters,
            prompts => prompts.Select(Complete).ToArray(),
            answer => answer.StartsWith("I cannot", StringComparison.Ordinal));

        Assert.Equal((3, 4), (location.CandidateFirstLayer, location.CandidateLastLayer));
        Assert.Equal((3, 5), (location.FirstLayer, location.LastLayer));
        Assert.Equal(0, location.BaselineRefusals);
        Assert.Equal(6, location.Trials.Max(t => t.Refusals));
        for (var i = 0; i < parameters.Count; i++) Assert.True(BitEqual(parameters[i].Parameter, originals[i]), $"{parameters[i].Name} restored");

        var json = location.ToJson();
        Assert.Contains("\"first_layer\": 3", json);
        var back = SafetyLayerLocation.FromJson(json);
        Assert.Equal(location.Curves.Gap, back.Curves.Gap);
        Assert.Equal(location.Trials, back.Trials);
        Assert.Equal((location.FirstLayer, location.LastLayer), (back.FirstLayer, back.LastLayer));
    }

    [Fact]
    public void Freezing_stops_gradients_of_attention_and_mlp_in_the_range_only()
    {
        using var scope = NewDisposeScope();
        var parameters = DecoderParameters(layers: 4, hidden: 4, Seeded(54), lora: true);
        // LoRA: only the adapters train; freezing must catch them too.
        var frozen = SafetyLayerFreezer.Freeze(parameters, 1, 2);

        var expected = parameters
            .Where(p => LayerParameterNames.IsLoraFactor(p.Name) && LayerParameterNames.LayerIndex(p.Name) is 1 or 2)
            .Select(p => p.Name).ToArray();
        Assert.Equal(expected, frozen);
        Assert.All(parameters, p => Assert.Equal(
            p.Name == "model.embed_tokens.weight" || (LayerParameterNames.IsLoraFactor(p.Name) && LayerParameterNames.LayerIndex(p.Name) is 0 or 3),
            p.Parameter.requires_grad));

        stack(parameters.Select(p => p.Parameter.sum()).ToArray()).sum().backward();
        Assert.All(parameters.Where(p => frozen.Contains(p.Name)), p => Assert.Null(p.Parameter.grad));
    }

    [Fact]
    public void Freezing_a_range_outside_the_model_fails_clearly()
    {
        var parameters = DecoderParameters(layers: 4, hidden: 4, Seeded(55));
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => SafetyLayerFreezer.Freeze(parameters, 2, 4));
        Assert.Contains("4 layers", error.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => SafetyLayerFreezer.Freeze(parameters, 3, 2));
    }
}
