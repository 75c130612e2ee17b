using FineTuneService.Datasets.Sft;
using FineTuneService.Datasets;
using FineTuneService.Ml.Training;

namespace FineTuneService.Ml.Tests.Training;

public class TrainingRowsTests
{
    [Fact]
    public void Labels_are_the_next_token_where_the_next_token_is_in_the_loss_mask()
    {
        var example = new TokenizedExample([10, 11, 12, 13, 14], [false, false, true, true, false]);

        var row = TrainingRows.ToRow(example, maxLength: 16);

        Assert.Equal([-100, 12, 13, -100, -100], row.Labels);
        Assert.Equal(2, row.TargetCount);
    }

    [Fact]
    public void Packing_never_predicts_across_example_boundaries_and_respects_the_maximum_length()
    {
        var examples = Enumerable.Range(0, 10)
            .Select(i => new TokenizedExample([100 + i, 200 + i, 300 + i], [false, true, true]))
            .ToList();

        var rows = TrainingRows.Build(examples, maxLength: 8, packing: true, seed: 3);

        Assert.All(rows, r => Assert.True(r.Length <= 8));
        Assert.Equal(30, rows.Sum(r => r.Length));
        foreach (var row in rows)
        {
            for (var t = 0; t < row.Length; t++)
            {
                if (row.Labels[t] == TrainingRow.IgnoreIndex) continue;
                // Every target is the next token of the same example (ids of one example share the last two digits).
                Assert.Equal(row.InputIds[t] % 100, row.Labels[t] % 100);
                Assert.Equal(row.InputIds[t] + 100, row.Labels[t]);
            }
        }
        Assert.Equal(20, rows.Sum(r => r.TargetCount));
    }

    [Fact]
    public void Packing_fills_rows_with_later_examples_that_still_fit()
    {
        var random = new Random(5);
        var examples = Enumerable.Range(0, 400).Select(i =>
        {
            var length = random.Next(20, 121);
            return new TokenizedExample([.. Enumerable.Range(0, length).Select(t => 3 + (i + t) % 50)], [.. Enumerable.Range(0, length).Select(t => t > length / 2)]);
        }).ToList();

        var rows = TrainingRows.Build(examples, maxLength: 256, packing: true, seed: 2);

        Assert.Equal(examples.Sum(e => e.Length), rows.Sum(r => r.Length));
        Assert.Equal(examples.Sum(e => TrainingRows.ToRow(e, 256).TargetCount), rows.Sum(r => r.TargetCount));
        Assert.All(rows, r => Assert.True(r.Length <= 256));
        // Closing each row at the first example that does not fit leaves about half an example (14 %) empty here.
        var fill = rows.Sum(r => r.Length) / (256.0 * rows.Count);
        Assert.True(fill > 0.95, $"rows are {fill:P1} full");
    }

    [Fact]
    public void Per_example_averaging_gives_every_example_a_total_weight_of_one_also_when_packed()
    {
        var shortAnswer = new TokenizedExample([10, 11, 12], [false, false, true]);
        var longAnswer = new TokenizedExample([20, 21, 22, 23, 24, 25], [false, false, true, true, true, true]);

        var perExample = TrainingRows.Build([shortAnswer, longAnswer], maxLength: 16, packing: true, seed: 1, LossAveraging.PerExample);
        var perToken = TrainingRows.Build([shortAnswer, longAnswer], maxLength: 16, packing: true, seed: 1);

        var packed = Assert.Single(perExample);
        Assert.Equal(2.0, packed.WeightSum, 6);
        Assert.Equal(5, packed.TargetCount);
        var weights = packed.Labels.Select((label, t) => (label, weight: packed.Weights[t])).Where(p => p.label != TrainingRow.IgnoreIndex).ToList();
        Assert.Equal(1f, weights.Where(p => p.label < 20).Sum(p => p.weight), 5);
        Assert.Equal(1f, weights.Where(p => p.label >= 20).Sum(p => p.weight), 5);
        Assert.All(packed.Labels.Select((label, t) => (label, t)).Where(p => p.label == TrainingRow.IgnoreIndex), p => Assert.Equal(0f, packed.Weights[p.t]));

        var tokenRow = Assert.Single(perToken);
        Assert.Equal(5.0, tokenRow.WeightSum);
        Assert.Equal(5f, tokenRow.Weights.Sum());
    }

    [Fact]
    public void An_examples_loss_weight_scales_its_targets_and_the_normaliser()
    {
        var label = new TokenizedExample([10, 11, 12], [false, false, true], LossWeight: 8f);
        var answer = new TokenizedExample([20, 21, 22, 23], [false, false, true, true]);

        var perToken = Assert.Single(TrainingRows.Build([label, answer], maxLength: 16, packing: true, seed: 1));
        var perExample = Assert.Single(TrainingRows.Build([label, answer], maxLength: 16, packing: true, seed: 1, LossAveraging.PerExample));

        Assert.Equal(8.0 + 2.0, perToken.WeightSum, 6);
        Assert.Equal(8f, perToken.Labels.Select((l, t) => l == 12 ? perToken.Weights[t] : 0f).Sum());
        Assert.Equal(8.0 + 1.0, perExample.WeightSum, 6);
        Assert.Equal(3, perToken.TargetCount);
    }

    [Fact]
    public void Data_order_is_a_seeded_permutation()
    {
        var first = DataOrder.Permutation(50, seed: 5, epoch: 0);

        Assert.Equal(Enumerable.Range(0, 50), first.Order());
        Assert.Equal(first, DataOrder.Permutation(50, seed: 5, epoch: 0));
        Assert.NotEqual(first, DataOrder.Permutation(50, seed: 5, epoch: 1));
        Assert.NotEqual(first, DataOrder.Permutation(50, seed: 6, epoch: 0));
    }
}
