using FineTuneService.Datasets;
using FineTuneService.Datasets.Corpus;
using FineTuneService.Datasets.Evaluation;
using FineTuneService.Datasets.Sft;
using FineTuneService.Ml.Safety.Strategies;

namespace FineTuneService.Ml.Safety.Hardening;

/// <summary>
/// What hardening trains on, from the shipped data folder: the alignment pairs are the shipped refusals
/// (Safety-Tuned LLaMAs) and the harmful pairs the shipped harmful answers (BeaverTails unsafe subset), as for the
/// strategies (<see cref="SafetyData"/>). A pair whose prompt mentions an evaluation prompt of the catalogue's held-out
/// share is dropped, so the hardened model is never scored on what it was hardened on.
/// </summary>
public static class ShippedHardeningData
{
    /// <summary>Pairs read from each shipped set before the held-out filter.</summary>
    public const int DefaultCount = 400;

    public static SafetyData Load(ShippedData data, int count = DefaultCount)
    {
        var catalogue = new EvaluationCatalogue(data);
        var all = SafetyData.FromShippedData(data, count);
        bool Trainable(ChatExample example) => !example.Messages.Any(m => catalogue.MentionsHeldOutPrompt(m.Content));
        return new SafetyData(all.Refusals.Where(Trainable).ToList(), all.HarmfulAnswers.Where(Trainable).ToList());
    }

    /// <summary>
    /// The sets in the model's chat template. A pair whose answer starts past <paramref name="maxSequenceLength"/>
    /// has no token to learn and would make a batch's mean loss NaN: it is left out.
    /// </summary>
    public static HardeningData Encode(SafetyData sets, ITextTokenizer tokenizer, int maxSequenceLength)
    {
        var encoder = new ChatExampleEncoder(tokenizer);
        List<TokenizedExample> Encoded(IEnumerable<ChatExample> examples) => examples
            .Select(e => encoder.Encode(e, maxSequenceLength))
            .Where(e => e.LossMask.Take(maxSequenceLength).Skip(1).Any(trainable => trainable))
            .ToList();
        return new HardeningData(Encoded(sets.Refusals), Encoded(sets.HarmfulAnswers), maxSequenceLength);
    }
}
