using System.Text;
using FineTuneService.Datasets.Jsonl;
using FineTuneService.Datasets.Sft;
using FineTuneService.TestSupport;

namespace FineTuneService.Datasets.Tests;

/// <summary>What a DPO run trains on, counted torch-free for the API's estimate: both answers' rows of every pair, cut as the trainer cuts them.</summary>
public sealed class PreferenceTokenCountTests
{
    private static string Row(string user, string preferred, string nonPreferred) =>
        $$"""{"input":{"messages":[{"role":"user","content":"{{user}}"}]},"preferred_output":[{"role":"assistant","content":"{{preferred}}"}],"non_preferred_output":[{"role":"assistant","content":"{{nonPreferred}}"}]}""";

    private static List<PreferenceExample> Pairs() =>
    [
        .. PreferenceJsonl.Read(new MemoryStream(Encoding.UTF8.GetBytes(string.Join('\n',
            Row("the model refuses", "the assistant refuses harmful requests", "the assistant answers"),
            Row("safety news", "it's safety data", "sports and business and world and science news and more news and more sports and business"),
            Row("what is 123", "4567", "the tokenizer"))))),
    ];

    [Fact]
    public void Every_epoch_trains_on_both_rows_of_every_pair_with_the_longer_answers_cut()
    {
        var pairs = Pairs();
        const int maxLength = 24;
        var encoder = new ChatExampleEncoder(TinyTokenizer.Trained);
        var lengths = pairs.SelectMany(p => new[] { encoder.Encode(p.Chosen).Length, encoder.Encode(p.Rejected).Length }).ToList();
        Assert.Contains(lengths, l => l > maxLength); // the cut matters

        var count = TrainingTokenCount.OfPreference(pairs, TinyTokenizer.Trained, maxLength, epochs: 2, batchSize: 2, seed: 5);

        Assert.Equal(3, count.Examples);
        Assert.Equal(6, count.Rows);
        Assert.Equal(2, count.StepsPerEpoch); // 3 pairs, 2 a step
        Assert.Equal(4, count.TotalSteps);
        Assert.Equal(2L * lengths.Sum(l => Math.Min(l, maxLength)), count.TrainedTokens);
    }

    [Fact]
    public void A_pair_whose_answer_is_cut_away_is_refused_as_the_trainer_refuses_it()
    {
        var error = Assert.Throws<ArgumentException>(() => TrainingTokenCount.OfPreference(Pairs(), TinyTokenizer.Trained, 4, epochs: 1, batchSize: 1, seed: 5));
        Assert.Contains("no token to score", error.Message);
    }
}
