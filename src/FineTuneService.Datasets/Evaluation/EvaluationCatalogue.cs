using FineTuneService.Datasets.Corpus;

namespace FineTuneService.Datasets.Evaluation;

/// <summary>A benchmark harmful request. <see cref="Key"/> is the text the held-out rule hashes (goal or behavior).</summary>
public sealed record HarmfulPrompt(string Prompt, string Key, string Source, string Category);

/// <summary>A single-turn prompt with its exact expected answer (classification label or final number).</summary>
public sealed record LabeledPrompt(string Prompt, string Expected, string Task)
{
    public IReadOnlyList<ChatMessage> Messages => [new ChatMessage(ChatMessage.User, Prompt)];
}

/// <summary>
/// The shipped evaluation sets, read from the data folder: the benchmark harmful prompts (AdvBench, HarmBench standard
/// behaviors, JailbreakBench) split by <see cref="HeldOutSplit"/>, XSTest, and the task evaluation splits (SST-2 dev,
/// AG News test, GSM8K test). What the safety gate, the benchmarks and the bootstrap acceptance measure comes from
/// here, and training recipes take their harmful prompts from <see cref="TrainingHarmful"/> and check their mixes
/// against <see cref="MentionsHeldOutPrompt"/>. Each set is read once, on first use.
/// </summary>
public sealed class EvaluationCatalogue
{
    private readonly Lazy<IReadOnlyList<HarmfulPrompt>> harmful;
    private readonly Lazy<IReadOnlyList<HarmfulPrompt>> heldOut;
    private readonly Lazy<IReadOnlyList<HarmfulPrompt>> training;
    private readonly Lazy<string[]> heldOutKeys;
    private readonly Lazy<IReadOnlyList<XsTestPrompt>> xsTestSafe;
    private readonly Lazy<IReadOnlyList<XsTestPrompt>> xsTestUnsafe;
    private readonly Lazy<IReadOnlyList<LabeledPrompt>> sst2Dev;
    private readonly Lazy<IReadOnlyList<LabeledPrompt>> agNewsTest;
    private readonly Lazy<IReadOnlyList<LabeledPrompt>> gsm8kTest;
    private readonly Lazy<IReadOnlyList<string>> refusalPrefixes;

    public EvaluationCatalogue(ShippedData data)
    {
        Data = data;
        harmful = new(() => ReadHarmfulPrompts(data));
        heldOut = new(() => harmful.Value.Where(p => HeldOutSplit.IsHeldOut(p.Key)).ToList());
        training = new(() => harmful.Value.Where(p => !HeldOutSplit.IsHeldOut(p.Key)).ToList());
        heldOutKeys = new(() => heldOut.Value.Select(p => HeldOutSplit.Normalize(p.Key)).ToArray());
        var xsTest = new Lazy<IReadOnlyList<XsTestPrompt>>(data.XsTest);
        xsTestSafe = new(() => xsTest.Value.Where(p => p.IsSafe).ToList());
        xsTestUnsafe = new(() => xsTest.Value.Where(p => !p.IsSafe).ToList());
        sst2Dev = new(() => data.Sst2("dev").Select(r => new LabeledPrompt(TaskPrompts.InstructionPrompt(TaskPrompts.Sst2Instruction, r.Text), r.Label, "sst2")).ToList());
        agNewsTest = new(() => data.AgNews("test").Select(r => new LabeledPrompt(TaskPrompts.InstructionPrompt(TaskPrompts.AgNewsInstruction, r.Text), r.Label, "ag_news")).ToList());
        gsm8kTest = new(() => data.Gsm8k("test").Select(p => new LabeledPrompt(p.Question, p.FinalAnswer, "gsm8k")).ToList());
        refusalPrefixes = new(data.RefusalPrefixes);
    }

    /// <summary>The catalogue of the shipped data folder (default <c>AppContext.BaseDirectory/data</c>).</summary>
    public static EvaluationCatalogue Load(string? dataDirectory = null) => new(new ShippedData(dataDirectory));

    public ShippedData Data { get; }

    /// <summary>Every benchmark harmful prompt once (by normalised key), in file order: AdvBench, HarmBench, JailbreakBench.</summary>
    public IReadOnlyList<HarmfulPrompt> HarmfulPrompts => harmful.Value;

    /// <summary>The held-out share: never in any training mix, so refusal on it measures generalisation to unseen prompts.</summary>
    public IReadOnlyList<HarmfulPrompt> HeldOutHarmful => heldOut.Value;

    /// <summary>The rest, which training recipes may pair with refusals.</summary>
    public IReadOnlyList<HarmfulPrompt> TrainingHarmful => training.Value;

    /// <summary>XSTest's 250 safe prompts: the over-refusal set.</summary>
    public IReadOnlyList<XsTestPrompt> XsTestSafe => xsTestSafe.Value;

    /// <summary>XSTest's 200 unsafe contrast prompts.</summary>
    public IReadOnlyList<XsTestPrompt> XsTestUnsafe => xsTestUnsafe.Value;

    public IReadOnlyList<LabeledPrompt> Sst2Dev => sst2Dev.Value;

    public IReadOnlyList<LabeledPrompt> AgNewsTest => agNewsTest.Value;

    public IReadOnlyList<LabeledPrompt> Gsm8kTest => gsm8kTest.Value;

    /// <summary>The 29 GCG refusal substrings (the keyword judge's list).</summary>
    public IReadOnlyList<string> RefusalPrefixes => refusalPrefixes.Value;

    /// <summary>
    /// Whether <paramref name="text"/> contains a held-out prompt's key after <see cref="HeldOutSplit.Normalize"/>: a
    /// training message that does must be dropped, even when the prompt is only part of a longer one.
    /// </summary>
    public bool MentionsHeldOutPrompt(string text)
    {
        var normalized = HeldOutSplit.Normalize(text);
        return heldOutKeys.Value.Any(normalized.Contains);
    }

    private static List<HarmfulPrompt> ReadHarmfulPrompts(ShippedData data)
    {
        var prompts = data.AdvBench().Select(b => new HarmfulPrompt(b.Goal, b.Goal, "advbench", ""))
            .Concat(data.HarmBench().Where(b => b.FunctionalCategory == "standard")
                .Select(b => new HarmfulPrompt(b.Prompt, b.Behavior, "harmbench", b.SemanticCategory)))
            .Concat(data.JailbreakBench().Select(b => new HarmfulPrompt(b.Goal, b.Goal, "jailbreakbench", b.Category)));
        return prompts.DistinctBy(p => HeldOutSplit.Normalize(p.Key)).ToList();
    }
}
