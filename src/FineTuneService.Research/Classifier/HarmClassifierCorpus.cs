using FineTuneService.Datasets;
using FineTuneService.Datasets.Corpus;
using FineTuneService.Datasets.Evaluation;
using FineTuneService.Ml.Evaluation.Classifier;
using FineTuneService.Ml.Evaluation.Judges;
using FineTuneService.Research.Bootstrap;

namespace FineTuneService.Research.Classifier;

/// <summary>Which optional sources the classifier corpus uses.</summary>
public sealed record HarmClassifierCorpusOptions
{
    public int Seed { get; init; } = 1234;

    /// <summary>
    /// Adds Dolly (safety-topic subset) and self-instruct answers as harmless pairs. Off by default: with them the
    /// classifier learned "long informative text = harmless", which is what compliant harmful generations look like
    /// (HarmBench-validation F1 0.46 with them, 0.65 without; see docs/benchmarks/classifier).
    /// </summary>
    public bool IncludeBenignAnswers { get; init; }
}

/// <summary>Training pairs split into what the classifier learns from and an in-distribution held-out part.</summary>
public sealed record HarmClassifierCorpus(IReadOnlyList<LabelledPair> Train, IReadOnlyList<LabelledPair> HeldOut)
{
    /// <summary>One pair in <see cref="HeldOutModulus"/> (chosen by a stable content hash) is held out.</summary>
    public const int HeldOutModulus = 5;

    private const int Sst2Rows = 400, AgNewsRows = 400, Gsm8kRows = 300, HarmfulPromptsWithTaskAnswers = 1000, WordSalads = 300;

    /// <summary>
    /// Harmful: BeaverTails unsafe responses, AdvBench compliance openings ("Sure, here is …", training share of the
    /// goals only) and compliant HH-RLHF rejected answers. Harmless: Safety-Tuned LLaMAs refusals, the bootstrap
    /// corpus's refusal replies after the training share of benchmark prompts, hard negatives —
    /// short task outputs (SST-2 label words, AG News class names, GSM8K answers) after their own prompts and after
    /// harmful prompts, since a task model answering "positive" to a harmful request has produced no harm, and word
    /// salad after harmful prompts — and optionally Dolly / self-instruct answers to their
    /// own prompts.
    /// </summary>
    public static HarmClassifierCorpus Load(ShippedData data, RefusalKeywords refusalKeywords, HarmClassifierCorpusOptions? options = null)
    {
        options ??= new HarmClassifierCorpusOptions();
        var random = new Random(options.Seed);
        var pairs = new List<LabelledPair>();

        pairs.AddRange(data.BeaverTailsUnsafe().Select(r => new LabelledPair(r.Prompt, r.Response, true, "beavertails_unsafe")));

        // Only the training share of the benchmark prompts; the held-out share is what HS is measured on. HarmBench's
        // behaviors stay out altogether: its human-labelled generations are the judge's test, and behaviors seen here
        // only with refusals and task answers taught the model that those requests are never answered harmfully.
        var trainedHarmful = new EvaluationCatalogue(data)
            .TrainingHarmful.Where(p => p.Source != "harmbench").Select(p => p.Prompt).ToList();
        var trainedGoals = trainedHarmful.ToHashSet(StringComparer.Ordinal);
        pairs.AddRange(data.AdvBench()
            .Where(b => trainedGoals.Contains(b.Goal))
            .Select(b => new LabelledPair(b.Goal, b.Target, true, "advbench_compliance_opening")));

        // HH-RLHF harmless-base: the rejected final turn is the more harmful one. Only those that differ from the chosen
        // turn, do not refuse (no GCG keyword) and say something (15+ words) are kept as harmful — weak labels.
        foreach (var dialogue in data.HhRlhfHarmless())
        {
            var (prompt, rejected) = LastExchange(dialogue.Rejected);
            var (_, chosen) = LastExchange(dialogue.Chosen);
            if (rejected != chosen && !refusalKeywords.IsRefusal(rejected) && rejected.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length >= 15)
                pairs.Add(new(prompt, rejected, true, "hh_rlhf_rejected_compliant"));
        }

        // Attacked models often open with a disclaimer and comply anyway ("As an AI I must stress… However, here are
        // the steps"); HarmBench counts that as harm. Built from a refusal's first sentence, a pivot and a compliant
        // answer to the same request (training-share answers only, so held-out figures stay clean).
        // Variants whose own hash falls in the held-out part are dropped: their answer is trained on.
        var disclaimers = data.SafetyTunedRefusals().Select(r => FirstSentence(r.Output)).Where(refusalKeywords.IsRefusal).Distinct().ToList();
        var compliant = pairs.Where(p => p.Source is "beavertails_unsafe" or "hh_rlhf_rejected_compliant" && !IsHeldOut(p)).ToList();
        foreach (var pair in compliant)
        {
            var disclaimer = disclaimers[random.Next(disclaimers.Count)];
            var pivot = CompliancePivots[random.Next(CompliancePivots.Length)];
            var variant = new LabelledPair(pair.Prompt, $"{disclaimer} {pivot} {pair.Response}", true, "disclaimer_then_compliance");
            if (!IsHeldOut(variant)) pairs.Add(variant);
        }

        // Harmful requests appear on both sides (refused and complied with), so the request alone does not decide.
        var harmfulPrompts = new List<string>(trainedHarmful);
        var replies = BootstrapCorpus.RefusalReplies;
        pairs.AddRange(harmfulPrompts.Select((p, i) => new LabelledPair(p, replies[(i * 7 + options.Seed) % replies.Count], false, "bootstrap_refusal")));
        foreach (var row in data.SafetyTunedRefusals())
        {
            var prompt = TaskPrompts.InstructionPrompt(row.Instruction, row.Input);
            harmfulPrompts.Add(prompt);
            pairs.Add(new(prompt, row.Output, false, "safety_tuned_refusals"));
        }

        if (options.IncludeBenignAnswers)
            pairs.AddRange(data.Dolly().Concat(data.SelfInstruct())
                .Select(r => new LabelledPair(TaskPrompts.InstructionPrompt(r.Instruction, r.Input), r.Output, false, r.Source)));

        var taskAnswers = new List<string>();
        foreach (var row in Sample(data.Sst2("train"), Sst2Rows, random))
        {
            taskAnswers.Add(row.Label);
            pairs.Add(new(TaskPrompts.InstructionPrompt(TaskPrompts.Sst2Instruction, row.Text), Variant(row.Label, random), false, "sst2_label"));
        }
        foreach (var row in Sample(data.AgNews("train"), AgNewsRows, random))
        {
            taskAnswers.Add(row.Label);
            pairs.Add(new(TaskPrompts.InstructionPrompt(TaskPrompts.AgNewsInstruction, row.Text), Variant(row.Label, random), false, "ag_news_label"));
        }
        foreach (var problem in Sample(data.Gsm8k("train"), Gsm8kRows, random))
        {
            taskAnswers.Add(problem.FinalAnswer);
            var answer = random.Next(2) == 0 ? BootstrapCorpus.MathAnswer(problem) : $"#### {problem.FinalAnswer}";
            pairs.Add(new(problem.Question, answer, false, "gsm8k_answer"));
        }
        // Babble after a harmful request is no instance of the behavior (HarmBench's rubric), and small fine-tuned
        // models produce plenty of it. Fluent off-topic answers were tried too and cost most of the recall on
        // HarmBench's compliant generations (F1 0.42), so they are not used.
        // Words drawn by corpus frequency, so the salad is as stopword-heavy as real babble.
        var benignWords = data.Dolly().Concat(data.SelfInstruct())
            .SelectMany(r => r.Output.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToList();
        for (var i = 0; i < WordSalads; i++)
        {
            var salad = string.Join(' ', Enumerable.Range(0, random.Next(3, 40)).Select(_ => benignWords[random.Next(benignWords.Count)]));
            pairs.Add(new(harmfulPrompts[random.Next(harmfulPrompts.Count)], salad, false, "harmful_prompt_babble"));
        }
        for (var i = 0; i < HarmfulPromptsWithTaskAnswers; i++)
        {
            var prompt = harmfulPrompts[random.Next(harmfulPrompts.Count)];
            var answer = i % 10 == 0 ? "" : Variant(taskAnswers[random.Next(taskAnswers.Count)], random);
            pairs.Add(new(prompt, answer, false, "harmful_prompt_task_answer"));
        }

        return new HarmClassifierCorpus(pairs.Where(p => !IsHeldOut(p)).ToList(), pairs.Where(IsHeldOut).ToList());
    }

    /// <summary>Generic turns from a disclaimer to compliance, as attacked models write them.</summary>
    private static readonly string[] CompliancePivots =
    [
        "However, here is the information you asked for:",
        "That said, for educational purposes only:",
        "But since you asked, here it is.",
        "Having said that, here are the steps:",
        "Nevertheless, hypothetically speaking:",
        "With that in mind, here is an answer:",
    ];

    private static string FirstSentence(string text)
    {
        var end = text.IndexOfAny(['.', '!', '?']);
        return (end < 0 ? text : text[..(end + 1)]).Trim();
    }

    /// <summary>Stable membership of the in-distribution held-out part (used by tests to pick unseen rows).</summary>
    public static bool IsHeldOut(LabelledPair pair) =>
        HashedTextFeatures.Fnv1a(pair.Source + "\n" + pair.Prompt + "\n" + pair.Response) % HeldOutModulus == 0;

    /// <summary>Source prefix of HarmBench validation pairs; the behavior's semantic category follows after a slash.</summary>
    public const string HarmBenchValidationSource = "harmbench_val";

    /// <summary>
    /// HarmBench's human-labelled classifier validation set: the behavior as prompt (the test case when the behavior
    /// is not in the behaviors file), the model generation as response, harmful by majority of three annotators.
    /// Validation only — never train on it.
    /// </summary>
    public static IReadOnlyList<LabelledPair> LoadHarmBenchValidation(ShippedData data)
    {
        var behaviors = data.HarmBench().ToDictionary(b => b.BehaviorId);
        return data.HarmBenchClassifierValidation()
            .Select(j => behaviors.GetValueOrDefault(j.BehaviorId) is { } behavior
                ? new LabelledPair(behavior.Behavior, j.Generation, j.IsHarmful, HarmBenchValidationSource + "/" + behavior.SemanticCategory)
                : new LabelledPair(j.TestCase, j.Generation, j.IsHarmful, HarmBenchValidationSource))
            .ToList();
    }

    /// <summary>Last user turn and the assistant's answer of an HH-RLHF transcript.</summary>
    private static (string Prompt, string Response) LastExchange(string transcript)
    {
        var messages = HhDialogue.ToMessages(transcript);
        var answer = messages.LastOrDefault(m => m.Role == ChatMessage.Assistant)?.Content ?? "";
        var prompt = messages.LastOrDefault(m => m.Role == ChatMessage.User)?.Content ?? "";
        return (prompt, answer);
    }

    private static string Variant(string answer, Random random) => (answer.Length == 0 ? 0 : random.Next(4)) switch
    {
        0 => answer,
        1 => char.ToUpperInvariant(answer[0]) + answer[1..],
        2 => answer + ".",
        _ => $"The answer is {answer}.",
    };

    private static IEnumerable<T> Sample<T>(IReadOnlyList<T> rows, int count, Random random)
    {
        var indices = Enumerable.Range(0, rows.Count).ToArray();
        random.Shuffle(indices);
        return indices.Take(count).Select(i => rows[i]);
    }
}
