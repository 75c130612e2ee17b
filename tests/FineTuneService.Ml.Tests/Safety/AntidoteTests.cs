using FineTuneService.Contracts.Safety;
using FineTuneService.Ml.Safety.Strategies;
using FineTuneService.Ml.Safety.Strategies.Antidote;
using static FineTuneService.Ml.Tests.Safety.SafetyTestTensors;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Tests.Safety;

public sealed class AntidoteTests
{
    [Theory]
    [InlineData(0.1, 40)]
    [InlineData(0.25, 17)]
    [InlineData(0.0, 12)]
    public void Zeroes_exactly_the_configured_fraction_per_row_and_those_are_the_highest_scores(double ratio, int columns)
    {
        using var scope = NewDisposeScope();
        var g = Seeded(31);
        var weight = Randn(g, 9, columns);
        var stats = rand([columns], generator: g) + 0.01f;
        var scores = (weight.abs() * stats.sqrt().unsqueeze(0)).clone();
        var original = weight.clone();

        var mask = WandaPruning.PruneInPlace(weight, stats, ratio);

        var expectedPerRow = (int)Math.Floor(columns * ratio);
        for (var row = 0; row < 9; row++)
        {
            var rowMask = mask[row];
            Assert.Equal(expectedPerRow, rowMask.sum().item<long>());
            Assert.Equal(expectedPerRow, weight[row].eq(0).sum().item<long>());
            Assert.True(BitEqual(weight[row].masked_select(rowMask.logical_not()), original[row].masked_select(rowMask.logical_not())), "unpruned entries are untouched");
            if (expectedPerRow == 0) continue;
            var lowestPruned = scores[row].masked_select(rowMask).min().item<float>();
            var highestKept = scores[row].masked_select(rowMask.logical_not()).max().item<float>();
            Assert.True(lowestPruned >= highestKept, $"row {row}: a kept entry outscores a pruned one");
        }
    }

    [Fact]
    public void Activation_statistics_change_which_entries_are_pruned()
    {
        using var scope = NewDisposeScope();
        var weight = ones(1, 10);
        var stats = zeros(10);
        stats[7] = tensor(4f);
        WandaPruning.PruneInPlace(weight, stats, 0.1);
        Assert.Equal(0f, weight[0, 7].item<float>());
        Assert.Equal(9f, weight.sum().item<float>());
    }

    [Fact]
    public void Full_fine_tune_pruning_resets_the_highest_scoring_delta_entries_to_base()
    {
        using var scope = NewDisposeScope();
        var g = Seeded(32);
        var baseWeight = Randn(g, 6, 20);
        var delta = Randn(g, 6, 20);
        var fineTuned = baseWeight + delta;
        var stats = rand([20], generator: g) + 0.1f;
        var deltaScores = delta.abs() * stats.sqrt().unsqueeze(0);

        var mask = WandaPruning.PruneDeltaInPlace(fineTuned, baseWeight, stats, 0.2);

        Assert.True(BitEqual(fineTuned.masked_select(mask), baseWeight.masked_select(mask)));
        Assert.True(BitEqual(fineTuned.masked_select(mask.logical_not()), (baseWeight + delta).masked_select(mask.logical_not())));
        for (var row = 0; row < 6; row++)
        {
            Assert.Equal(4, mask[row].sum().item<long>());
            Assert.True(deltaScores[row].masked_select(mask[row]).min().item<float>() >= deltaScores[row].masked_select(mask[row].logical_not()).max().item<float>());
        }
    }

    [Fact]
    public void Lora_pruning_prunes_both_factors_with_their_own_input_statistics()
    {
        using var scope = NewDisposeScope();
        var g = Seeded(33);
        var parameters = DecoderParameters(layers: 1, hidden: 20, g, lora: true);
        var stats = parameters.Where(p => LayerParameterNames.IsLoraFactor(p.Name))
            .ToDictionary(p => LayerParameterNames.ModuleOf(p.Name), p => rand([p.Parameter.shape[1]], generator: g));
        var baseBefore = parameters.Where(p => !LayerParameterNames.IsLoraFactor(p.Name)).Select(p => p.Parameter.clone()).ToArray();

        var report = new AntidotePruner(new AntidoteParams(DenseRatio: 0.5)).PruneLora(parameters, stats);

        // lora_A: 2 x 20 → 10 per row; lora_B: 20 x 2 → 1 per row.
        Assert.Equal(3, report.PrunedPerWeight.Keys.Count(LayerParameterNames.IsLoraA));
        Assert.All(report.PrunedPerWeight.Where(p => LayerParameterNames.IsLoraA(p.Key)), p => Assert.Equal(20, p.Value));
        Assert.All(report.PrunedPerWeight.Where(p => LayerParameterNames.IsLoraB(p.Key)), p => Assert.Equal(20, p.Value));
        var baseAfter = parameters.Where(p => !LayerParameterNames.IsLoraFactor(p.Name)).Select(p => p.Parameter).ToArray();
        for (var i = 0; i < baseBefore.Length; i++) Assert.True(BitEqual(baseBefore[i], baseAfter[i]), "base weights are not pruned");
    }

    [Fact]
    public void Lora_A_falls_back_to_the_adapted_module_input_and_missing_statistics_fail_clearly()
    {
        using var scope = NewDisposeScope();
        var g = Seeded(34);
        var parameters = DecoderParameters(layers: 1, hidden: 10, g, lora: true)
            .Where(p => p.Name.Contains("q_proj.lora_", StringComparison.Ordinal)).ToList();
        var stats = new Dictionary<string, Tensor>
        {
            ["model.layers.0.self_attn.q_proj"] = ones(10),
            ["model.layers.0.self_attn.q_proj.lora_B"] = ones(2),
        };
        var report = new AntidotePruner(new AntidoteParams()).PruneLora(parameters, stats);
        Assert.Equal(2, report.PrunedPerWeight["model.layers.0.self_attn.q_proj.lora_A.weight"]);

        stats.Remove("model.layers.0.self_attn.q_proj.lora_B");
        var error = Assert.Throws<InvalidOperationException>(() => new AntidotePruner(new AntidoteParams()).PruneLora(parameters, stats));
        Assert.Contains("q_proj.lora_B", error.Message);
    }
}
