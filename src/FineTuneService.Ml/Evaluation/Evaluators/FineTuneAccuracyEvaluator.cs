using FineTuneService.Datasets;

namespace FineTuneService.Ml.Evaluation.Evaluators;

/// <summary>One task example: the user prompt and the reference answer (label word, class name, GSM8K answer).</summary>
public sealed record AccuracyExample(string Prompt, string Reference)
{
    /// <summary>
    /// Examples from a fine-tuning validation file: the last user turn before the last assistant turn is the prompt,
    /// that assistant turn the reference. Chats without both are skipped.
    /// </summary>
    public static IReadOnlyList<AccuracyExample> FromChats(IEnumerable<ChatExample> chats)
    {
        var examples = new List<AccuracyExample>();
        foreach (var chat in chats)
        {
            var answerAt = chat.Messages.ToList().FindLastIndex(m => m.Role == ChatMessage.Assistant);
            if (answerAt < 0) continue;
            var prompt = chat.Messages.Take(answerAt).LastOrDefault(m => m.Role == ChatMessage.User);
            if (prompt is not null) examples.Add(new AccuracyExample(prompt.Content, chat.Messages[answerAt].Content));
        }
        return examples;
    }
}

public sealed record FineTuneAccuracyResult(double Accuracy, int Examples, int Correct, string Matcher,
    IReadOnlyList<EvaluationSample> Samples)
{
    /// <summary>Whether each example's answer matched, in example order: two models compare prompt by prompt.</summary>
    public IReadOnlyList<bool> Matches { get; init; } = [];
}

/// <summary>FA: % of a task's evaluation examples whose greedy answer matches the reference.</summary>
public sealed class FineTuneAccuracyEvaluator(IResponseGenerator generator, IAnswerMatcher matcher)
{
    public const string SampleKind = "fine_tune_accuracy";

    public async Task<FineTuneAccuracyResult> EvaluateAsync(IReadOnlyList<AccuracyExample> examples, GenerationSettings settings,
        int samplesToKeep = 20, CancellationToken cancellationToken = default)
    {
        if (examples.Count == 0) throw new ArgumentException("No evaluation examples.", nameof(examples));
        var responses = await generator.GenerateAsync(examples.Select(e => e.Prompt).ToList(), settings, cancellationToken);
        if (responses.Count != examples.Count)
            throw new InvalidOperationException($"The generator returned {responses.Count} responses for {examples.Count} prompts.");
        var correct = examples.Select((e, i) => matcher.Matches(responses[i], e.Reference)).ToList();
        var count = correct.Count(c => c);
        var samples = Enumerable.Range(0, Math.Min(samplesToKeep, examples.Count))
            .Select(i => new EvaluationSample(SampleKind, examples[i].Prompt, responses[i], Category: null,
                new Dictionary<string, bool?> { ["correct"] = correct[i] }))
            .ToList();
        return new FineTuneAccuracyResult(Rates.Percent(count, examples.Count), examples.Count, count, matcher.Name, samples) { Matches = correct };
    }
}
