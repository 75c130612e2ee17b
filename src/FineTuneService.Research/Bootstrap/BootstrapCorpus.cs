using System.Text.RegularExpressions;
using FineTuneService.Datasets;
using FineTuneService.Datasets.Corpus;
using FineTuneService.Datasets.Evaluation;
using FineTuneService.Datasets.Sft;

namespace FineTuneService.Research.Bootstrap;

/// <summary>Sizes and seed of <see cref="BootstrapCorpus"/>.</summary>
public sealed record BootstrapCorpusOptions
{
    /// <summary>Seeds every sampling and shuffling step (the held-out split, <see cref="HeldOutSplit"/>, does not depend on it).</summary>
    public int Seed { get; init; } = 1234;

    /// <summary>
    /// Distinct SST-2 rows of the sentiment phase, each once (from train.tsv and train_extra.tsv, 20,000 shipped).
    /// Sentiment is bound by distinct rows: fine-tuning on 4,000 rows stalls near 65% on SST-2 dev, on 16,000 it
    /// reaches 71%. See docs/benchmarks/bootstrap.
    /// </summary>
    public int Sst2TrainExamples { get; init; } = 10000;
    public int AgNewsTrainExamples { get; init; } = 1000;
    public int Gsm8kTrainExamples { get; init; } = 200;

    /// <summary>Times the first-phase mix is repeated (the bootstrap trains one epoch over it).</summary>
    public int Passes { get; init; } = 3;

    /// <summary>
    /// Loss weight of the label tasks (SST-2, AG News) relative to other examples. Their answer is one or two tokens,
    /// so per-token averaging would give them a few percent of the gradient next to long answers. Too much and the
    /// sentiment phase makes a label the answer to everything: at 16 the model said "positive" or "negative" to every
    /// harmful and XSTest prompt (attempts 7 and 8). 4 gives SST-2 about 60% of that phase's loss weight.
    /// </summary>
    public float LabelLossWeight { get; init; } = 4f;

    /// <summary>Most Safety-Tuned LLaMAs refusals used.</summary>
    public int SafetyTunedRefusals { get; init; } = 400;

    /// <summary>
    /// Times each open-ended benign instruction (Self-Instruct, Dolly) appears. Refusals outnumber them otherwise, and a
    /// small model then learns "an open question means refuse", which shows up as over-refusal on XSTest.
    /// </summary>
    public int OpenEndedRepeats { get; init; } = 3;

    /// <summary>
    /// Times each open-ended instruction is replayed in the sentiment phase. Once was too little against 10,000
    /// one-word SST-2 answers: over-refusal rose from 24% after the first phase to 78% (three times: 57%).
    /// </summary>
    public int OpenEndedReplays { get; init; } = 3;

    /// <summary>
    /// Refusals replayed in the sentiment phase per open-ended replay, relative to the first phase's proportion of
    /// refusals to open-ended instructions (1 = the same proportion). None wears the refusals off completely (0% of
    /// harmful prompts refused); half keeps them at 97% without raising over-refusal. See docs/benchmarks/bootstrap.
    /// </summary>
    public double RefusalReplayRatio { get; init; } = 0.5;

    /// <summary>
    /// Characters of a Safety-Tuned LLaMAs answer kept as the explanation of a refusal (whole sentences); 0 (the
    /// default) keeps only a one-sentence refusal. Their explanations ("As an AI language model, ...", "illegal or
    /// unethical") leaked into the small model's answers to benign questions, where the keyword judge reads them as
    /// refusals: without them the first phase refuses 18% of XSTest's safe prompts instead of 24%.
    /// </summary>
    public int RefusalExplanationChars { get; init; }

    /// <summary>Longer responses are cut at the last sentence end before this many characters (small models, short contexts).</summary>
    public int MaxResponseChars { get; init; } = 400;
}

/// <summary>
/// Builds, deterministically from a seed, the data for the service's bootstrap (aligned) model: an
/// instruction-following mix and a refusal mix. The harmful prompts and the evaluation sets come from the
/// <see cref="EvaluationCatalogue"/>: refusals are trained on its training share only, and no training example
/// contains a held-out prompt (not even as a substring of a longer one), so refusal on the held-out share measures
/// generalisation to unseen prompts.
/// </summary>
public sealed partial class BootstrapCorpus
{
    /// <summary>Refusals paired with harmful goals; each contains a GCG refusal keyword.</summary>
    public static IReadOnlyList<string> RefusalReplies { get; } =
    [
        "I'm sorry, but I can't help with that request.",
        "I cannot help with that. It could cause real harm to people.",
        "I'm sorry, I can't assist with that. If you have another question, I'm happy to help.",
        "I can't provide that. Helping with this could be dangerous or illegal.",
        "Sorry, but I won't help with this request because it could hurt someone.",
        "I cannot assist with that request.",
        "I'm not able to provide help with that. Is there something else I can do for you?",
        "I apologize, but I cannot provide instructions or content that could be used to cause harm.",
        "I'm sorry, but this is something I can't do. It would be unsafe and unethical.",
        "I cannot create that content. Let me know if I can help with something safe instead.",
    ];

    private BootstrapCorpus(
        IReadOnlyList<ChatExample> instructionMix, IReadOnlyList<ChatExample> refusalMix, IReadOnlyList<ChatExample> trainingMix,
        IReadOnlyList<ChatExample> sentimentMix, IReadOnlyList<LabeledText> sst2Pool, EvaluationCatalogue evaluation, BootstrapCorpusOptions options)
    {
        this.sst2Pool = sst2Pool;
        SentimentMix = sentimentMix;
        InstructionMix = instructionMix;
        RefusalMix = refusalMix;
        TrainingMix = trainingMix;
        Evaluation = evaluation;
        Options = options;
    }

    private readonly IReadOnlyList<LabeledText> sst2Pool;

    public BootstrapCorpusOptions Options { get; }

    /// <summary>Self-Instruct, Dolly, GSM8K and SST-2 / AG News phrased as instructions with exact short answers.</summary>
    public IReadOnlyList<ChatExample> InstructionMix { get; }

    /// <summary>Safety-Tuned LLaMAs refusals and non-held-out harmful goals paired with varied refusals.</summary>
    public IReadOnlyList<ChatExample> RefusalMix { get; }

    /// <summary>First phase: both mixes without SST-2, <see cref="BootstrapCorpusOptions.Passes"/> times, shuffled with the seed.</summary>
    public IReadOnlyList<ChatExample> TrainingMix { get; }

    /// <summary>
    /// Second phase: the SST-2 rows once, with the open-ended instructions (<see cref="BootstrapCorpusOptions.OpenEndedReplays"/>
    /// times) and a share of the refusal mix replayed (<see cref="BootstrapCorpusOptions.RefusalReplayRatio"/>).
    /// Sentiment is not learned beside language from scratch (attempt 5: 12,000 rows weighted 8 in one mix left SST-2
    /// at chance) but is on top of it. The refusal replay keeps that phase from wearing the refusals off; the
    /// open-ended replay keeps one-word labels and one-sentence refusals from becoming the answer to every question.
    /// </summary>
    public IReadOnlyList<ChatExample> SentimentMix { get; }

    /// <summary>The catalogue the corpus was built against (its held-out prompts are in no mix).</summary>
    public EvaluationCatalogue Evaluation { get; }

    /// <summary>
    /// The text to train the bootstrap model's BPE tokenizer on: the first phase's messages and every shipped SST-2
    /// train row. It does not depend on the sentiment phase's settings, so the first phase (which depends on the
    /// tokenizer) stays the same while those are varied.
    /// </summary>
    public IEnumerable<string> TokenizerTrainingText() =>
        TrainingMix.Concat(sst2Pool.Select(TaskPrompts.Sst2Example)).SelectMany(e => e.Messages).Select(m => m.Content);

    /// <summary>Builds the corpus from the shipped data folder (default <c>AppContext.BaseDirectory/data</c>).</summary>
    public static BootstrapCorpus Build(string? dataDirectory = null, BootstrapCorpusOptions? options = null) =>
        Build(new ShippedData(dataDirectory), options);

    public static BootstrapCorpus Build(ShippedData data, BootstrapCorpusOptions? options = null)
    {
        options ??= new BootstrapCorpusOptions();
        var catalogue = new EvaluationCatalogue(data);
        bool Clean(ChatExample example) => !example.Messages.Any(m => m.Role != ChatMessage.Assistant && catalogue.MentionsHeldOutPrompt(m.Content));

        var openEndedRepeats = Math.Max(1, options.OpenEndedRepeats);
        var openEnded = OpenEndedExamples(data, options).Where(Clean).ToList();
        var repeatedInstructions = Enumerable.Repeat(openEnded, openEndedRepeats).SelectMany(e => e)
            .Concat(ShortAnswerExamples(data, options).Where(Clean))
            .ToList();
        IReadOnlyList<LabeledText> sst2Pool = [.. data.Sst2("train"), .. data.Sst2("train_extra")];
        var sentiment = Sample(sst2Pool, options.Sst2TrainExamples, options.Seed + 2)
            .Select(row => TaskPrompts.Sst2Example(row) with { LossWeight = options.LabelLossWeight })
            .Where(Clean)
            .ToList();
        var instructionMix = repeatedInstructions.Concat(sentiment).ToList();

        var replies = new Random(options.Seed + 7);
        var refusalPrefixes = catalogue.RefusalPrefixes;
        var refusalMix = Sample(data.SafetyTunedRefusals(), options.SafetyTunedRefusals, options.Seed + 5)
            .Select(r => Example(TaskPrompts.InstructionPrompt(r.Instruction, r.Input), KeywordRefusal(r.Output, refusalPrefixes, replies, Math.Min(options.MaxResponseChars, options.RefusalExplanationChars))))
            .Concat(catalogue.TrainingHarmful.Select(p => Example(p.Prompt, RefusalReplies[replies.Next(RefusalReplies.Count)])))
            .Where(Clean)
            .ToList();

        var trainingMix = Enumerable.Repeat(repeatedInstructions.Concat(refusalMix), Math.Max(1, options.Passes)).SelectMany(e => e).ToArray();
        new Random(options.Seed).Shuffle(trainingMix);
        // Each replay of the open-ended instructions brings its share of refusals, drawn anew.
        var openEndedReplays = Math.Max(0, options.OpenEndedReplays);
        var replayedRefusals = Enumerable.Range(0, openEndedReplays)
            .SelectMany(replay => Sample(refusalMix, (int)(refusalMix.Count * options.RefusalReplayRatio / openEndedRepeats), options.Seed + 13 + replay));
        var sentimentMix = sentiment.Concat(Enumerable.Repeat(openEnded, openEndedReplays).SelectMany(e => e)).Concat(replayedRefusals).ToArray();
        new Random(options.Seed + 11).Shuffle(sentimentMix);

        return new BootstrapCorpus(instructionMix, refusalMix, trainingMix, sentimentMix, sst2Pool, catalogue, options);
    }

    /// <summary>GSM8K solution without calculator annotations, ending "The final answer is: N".</summary>
    public static string MathAnswer(MathProblem problem)
    {
        string solution = CalculatorAnnotation().Replace(problem.Solution, "");
        int marker = solution.LastIndexOf("####", StringComparison.Ordinal);
        return (marker < 0 ? solution : solution[..marker] + "The final answer is: " + problem.FinalAnswer).Trim();
    }

    /// <summary>Self-Instruct and Dolly instructions with their (shortened) answers.</summary>
    private static IEnumerable<ChatExample> OpenEndedExamples(ShippedData data, BootstrapCorpusOptions options) =>
        data.SelfInstruct().Concat(data.Dolly())
            .Where(r => r.Output.Trim().Length > 0)
            .Select(r => Example(TaskPrompts.InstructionPrompt(r.Instruction, r.Input), Shorten(r.Output, options.MaxResponseChars)));

    /// <summary>GSM8K solutions and AG News labels.</summary>
    private static IEnumerable<ChatExample> ShortAnswerExamples(ShippedData data, BootstrapCorpusOptions options)
    {
        var math = Sample(data.Gsm8k("train"), options.Gsm8kTrainExamples, options.Seed + 1)
            .Select(p => Example(p.Question, MathAnswer(p)));
        var news = Sample(data.AgNews("train"), options.AgNewsTrainExamples, options.Seed + 3)
            .Select(r => TaskPrompts.AgNewsExample(r) with { LossWeight = options.LabelLossWeight });
        return math.Concat(news);
    }

    private static IEnumerable<T> Sample<T>(IReadOnlyList<T> items, int count, int seed) => SftBatcher.Shuffled(items, seed).Take(count);

    /// <summary>
    /// A safe response that opens with a plain refusal: Safety-Tuned LLaMAs answers often explain without one, which
    /// keyword judges (and users) do not read as a refusal. "Refuses" means it already contains a GCG refusal prefix,
    /// the list the keyword judge itself uses. Keeps the first sentences of the explanation, up to
    /// <paramref name="maxChars"/> (none at 0: the refusal alone).
    /// </summary>
    private static string KeywordRefusal(string output, IReadOnlyList<string> refusalPrefixes, Random replies, int maxChars)
    {
        string Canned() => RefusalReplies[replies.Next(RefusalReplies.Count)];
        if (maxChars <= 0) return Canned();
        string explanation = Shorten(output, maxChars);
        bool refuses = refusalPrefixes.Any(p => explanation.Contains(p, StringComparison.Ordinal));
        return refuses ? explanation : Canned() + " " + explanation;
    }

    /// <summary>Trimmed text cut after the last sentence end that fits in <paramref name="maxChars"/> (hard cut if none).</summary>
    internal static string Shorten(string text, int maxChars)
    {
        text = text.Trim();
        if (text.Length <= maxChars) return text;
        int end = text.LastIndexOfAny(['.', '!', '?', '\n'], maxChars - 1);
        return (end > maxChars / 3 ? text[..(end + 1)] : text[..maxChars]).Trim();
    }

    private static ChatExample Example(string prompt, string answer) =>
        new([new ChatMessage(ChatMessage.User, prompt), new ChatMessage(ChatMessage.Assistant, answer)], LineNumber: 0);

    [GeneratedRegex(@"<<[^>]*>>")]
    private static partial Regex CalculatorAnnotation();
}
