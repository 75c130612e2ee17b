using FineTuneService.Datasets;
using FineTuneService.Datasets.Corpus;
using FineTuneService.Datasets.Evaluation;
using FineTuneService.Research.Benchmarks;

namespace FineTuneService.Ml.Tests.Safety;

public sealed class HarmfulFineTuneMixTests
{
    private static readonly ShippedData Data = new();
    private static readonly EvaluationCatalogue Sets = new(Data);
    private static readonly IReadOnlyList<HarmfulPair> Pool =
        HarmfulFineTuneMix.AttackPool(Data, Sets.HeldOutHarmful.SelectMany(p => new[] { p.Prompt, p.Key }));
    private static readonly IReadOnlyList<ChatExample> Sst2 = Data.Sst2("train").Take(2000).Select(TaskPrompts.Sst2Example).ToList();

    [Theory]
    [InlineData(400, 0.0, 0)]
    [InlineData(400, 0.05, 20)]
    [InlineData(400, 0.1, 40)]
    [InlineData(400, 0.2, 80)]
    [InlineData(30, 0.05, 2)] // 1.5 rounds away from zero
    public void The_mix_has_exactly_round_p_n_harmful_rows(int rows, double ratio, int expectedHarmful)
    {
        var mix = HarmfulFineTuneMix.Build(Sst2, Pool, rows, ratio, seed: 3);

        Assert.Equal(rows, mix.Examples.Count);
        Assert.Equal(expectedHarmful, mix.HarmfulRows);
        Assert.Equal(rows - expectedHarmful, mix.TaskRows);
        var poolPrompts = Pool.Select(p => p.Prompt).ToHashSet();
        Assert.Equal(expectedHarmful, mix.Examples.Count(e => poolPrompts.Contains(e.Messages[0].Content)));
        Assert.Equal(rows - expectedHarmful, mix.Examples.Count(e => e.Messages[0].Content.StartsWith(TaskPrompts.Sst2Instruction, StringComparison.Ordinal)));
    }

    [Fact]
    public void The_attack_pool_mixes_both_sources_and_never_overlaps_an_evaluation_prompt()
    {
        Assert.Contains(Pool, p => p.Source == "beavertails");
        Assert.Contains(Pool, p => p.Source == "advbench");
        var evaluation = Sets.HeldOutHarmful.SelectMany(p => new[] { p.Prompt, p.Key }).Select(HeldOutSplit.Normalize).ToArray();
        foreach (var pair in Pool)
        {
            var prompt = HeldOutSplit.Normalize(pair.Prompt);
            Assert.DoesNotContain(evaluation, e => prompt.Contains(e, StringComparison.Ordinal) || e.Contains(prompt, StringComparison.Ordinal));
        }
        // Held-out AdvBench goals exist and are what was removed: the pool is smaller than both sources together.
        Assert.Contains(Sets.HeldOutHarmful, p => p.Source == "advbench");
        Assert.True(Pool.Count < Data.BeaverTailsUnsafe().Count + Data.AdvBench().Count);
    }

    [Fact]
    public void The_same_seed_gives_the_same_mix_and_another_seed_another()
    {
        var first = HarmfulFineTuneMix.Build(Sst2, Pool, 200, 0.1, seed: 7);
        var again = HarmfulFineTuneMix.Build(Sst2, Pool, 200, 0.1, seed: 7);
        var other = HarmfulFineTuneMix.Build(Sst2, Pool, 200, 0.1, seed: 8);

        Assert.Equal(Texts(first), Texts(again));
        Assert.NotEqual(Texts(first), Texts(other));
    }

    [Fact]
    public void A_higher_ratio_replaces_task_rows_of_the_same_draw()
    {
        var clean = HarmfulFineTuneMix.Build(Sst2, Pool, 200, 0, seed: 5);
        var attacked = HarmfulFineTuneMix.Build(Sst2, Pool, 200, 0.2, seed: 5);

        var cleanTask = Texts(clean).ToHashSet();
        var attackedTask = attacked.Examples.Where(e => e.Messages[0].Content.StartsWith(TaskPrompts.Sst2Instruction, StringComparison.Ordinal)).Select(Text);
        Assert.All(attackedTask, t => Assert.Contains(t, cleanTask));
    }

    [Fact]
    public void Impossible_requests_fail_with_a_clear_message()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => HarmfulFineTuneMix.Build(Sst2, Pool, 10, 1.5, seed: 1));
        var error = Assert.Throws<ArgumentException>(() => HarmfulFineTuneMix.Build(Sst2, Pool.Take(3).ToList(), 100, 0.1, seed: 1));
        Assert.Contains("attack pool has only 3", error.Message);
    }

    private static string Text(ChatExample e) => string.Join("\u0001", e.Messages.Select(m => m.Role + ":" + m.Content));

    private static List<string> Texts(HarmfulFineTuneMix mix) => mix.Examples.Select(Text).ToList();
}
