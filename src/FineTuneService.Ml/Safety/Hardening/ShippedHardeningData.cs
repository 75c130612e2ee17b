using FineTuneService.Datasets;
using FineTuneService.Datasets.Corpus;
using FineTuneService.Datasets.Evaluation;
using FineTuneService.Datasets.Sft;
using FineTuneService.Ml.Safety.Strategies;

namespace FineTuneService.Ml.Safety.Hardening;

/// <summary>
/// What hardening trains on, from the shipped data folder: the alignment pairs are the shipped refusals
/// (Safety-Tuned LLaMAs) and the harmful pairs the shipped harmful answers (BeaverTails unsafe subset), as for the
/// strategies (<see cref="SafetyData"/>); the benign pairs are training-set instructions (Dolly, Self-Instruct, SST-2
/// train in the benchmark's chat form). A pair whose prompt mentions an evaluation prompt is dropped (a held-out harmful
/// prompt; for the benign pairs also an XSTest or SST-2 dev prompt), so the hardened model is never scored on what it
/// was hardened on.
/// </summary>
public static class ShippedHardeningData
{
    /// <summary>Pairs read from each shipped safety set before the held-out filter.</summary>
    public const int DefaultCount = 400;

    /// <summary>Benign candidates, taken in turn from each benign source (a third each).</summary>
    public const int DefaultBenignCount = 300;

    /// <summary>Longest benign prompt kept: room for an answer within the hardening's sequence length.</summary>
    public const int MaxBenignPromptChars = 600;

    /// <summary>The benign sources, each in file order: shipped training data only.</summary>
    public static IReadOnlyList<string> BenignSources { get; } = ["dolly", "self_instruct", "sst2_train"];

    public static HardeningSets Load(ShippedData data, int count = DefaultCount, int benignCount = DefaultBenignCount)
    {
        var catalogue = new EvaluationCatalogue(data);
        var all = SafetyData.FromShippedData(data, count);
        bool Trainable(ChatExample example) => !example.Messages.Any(m => catalogue.MentionsHeldOutPrompt(m.Content));
        return new HardeningSets(new SafetyData(all.Refusals.Where(Trainable).ToList(), all.HarmfulAnswers.Where(Trainable).ToList()),
            BenignPrompts(data, catalogue, benignCount));
    }

    /// <summary>
    /// Benign pairs with their dataset answers (a method answers them with the base), taken in turn from
    /// <see cref="BenignSources"/>; none mentions an evaluation prompt.
    /// </summary>
    public static IReadOnlyList<ChatExample> BenignPrompts(ShippedData data, EvaluationCatalogue catalogue, int count = DefaultBenignCount)
    {
        var evaluationPrompts = catalogue.HeldOutHarmful.Select(p => p.Key)
            .Concat(catalogue.XsTestSafe.Concat(catalogue.XsTestUnsafe).Select(p => p.Prompt))
            .Concat(data.Sst2("dev").Select(r => r.Text))
            .Select(HeldOutSplit.Normalize).Where(p => p.Length > 0).ToArray();
        bool Benign(ChatExample example)
        {
            var prompt = example.Messages[0].Content;
            if (prompt.Length > MaxBenignPromptChars) return false;
            var normalized = HeldOutSplit.Normalize(prompt);
            return !evaluationPrompts.Any(normalized.Contains);
        }

        var perSource = (count + BenignSources.Count - 1) / BenignSources.Count;
        IEnumerable<ChatExample> Instructions(IEnumerable<InstructionRow> rows) =>
            rows.Select(r => Chat(TaskPrompts.InstructionPrompt(r.Instruction, r.Input), r.Output));
        var sources = new[]
        {
            Instructions(data.Dolly()),
            Instructions(data.SelfInstruct()),
            data.Sst2("train").Select(TaskPrompts.Sst2Example),
        }.Select(source => source.Where(e => e.Messages[1].Content.Length > 0).Where(Benign).Take(perSource).ToList()).ToArray();
        return Enumerable.Range(0, perSource)
            .SelectMany(i => sources.Where(s => i < s.Count).Select(s => s[i]))
            .Take(count)
            .Select((e, i) => e with { LineNumber = i + 1 })
            .ToList();
    }

    /// <summary>
    /// The sets in the model's chat template. A pair whose answer starts past <paramref name="maxSequenceLength"/>
    /// has no token to learn and would make a batch's mean loss NaN: it is left out.
    /// </summary>
    public static HardeningData Encode(HardeningSets sets, ITextTokenizer tokenizer, int maxSequenceLength)
    {
        var encoder = new ChatExampleEncoder(tokenizer);
        List<TokenizedExample> Encoded(IEnumerable<ChatExample> examples) => examples
            .Select(e => encoder.Encode(e, maxSequenceLength))
            .Where(e => e.LossMask.Take(maxSequenceLength).Skip(1).Any(trainable => trainable))
            .ToList();
        return new HardeningData(Encoded(sets.Safety.Refusals), Encoded(sets.Safety.HarmfulAnswers), maxSequenceLength, Encoded(sets.Benign));
    }

    private static ChatExample Chat(string prompt, string answer) =>
        new([new ChatMessage(ChatMessage.User, prompt), new ChatMessage(ChatMessage.Assistant, answer)], LineNumber: 0);
}
