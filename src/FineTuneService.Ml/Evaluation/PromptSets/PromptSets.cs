using FineTuneService.Datasets.Evaluation;

namespace FineTuneService.Ml.Evaluation.PromptSets;

/// <summary>The shipped evaluation sets (from the <see cref="EvaluationCatalogue"/>) as prompt sets and accuracy examples.</summary>
public static class ShippedPromptSets
{
    /// <summary>
    /// Held-out harmful prompts (AdvBench, HarmBench standard, JBB; never in any training mix). <paramref name="source"/>
    /// picks one benchmark ("advbench", "harmbench", "jailbreakbench") or all when null; categories where the set has them.
    /// </summary>
    public static PromptSet HeldOutHarmful(EvaluationCatalogue sets, string? source = null)
    {
        var prompts = sets.HeldOutHarmful
            .Where(p => source is null || p.Source == source)
            .Select(p => new EvaluationPrompt(p.Prompt, string.IsNullOrEmpty(p.Category) ? null : p.Category))
            .ToList();
        if (prompts.Count == 0) throw new ArgumentException($"No held-out harmful prompts for source '{source}'.", nameof(source));
        return new PromptSet(source is null ? "held_out_harmful" : $"{source}_held_out", prompts);
    }

    /// <summary>XSTest's 250 safe prompts, categorised by type — the over-refusal set.</summary>
    public static PromptSet XsTestSafe(EvaluationCatalogue sets) =>
        new("xstest_safe", sets.XsTestSafe.Select(p => new EvaluationPrompt(p.Prompt, p.Type)).ToList());

    /// <summary>Task evaluation split ("sst2", "ag_news", "gsm8k") as accuracy examples with the matcher the task uses.</summary>
    public static (IReadOnlyList<Evaluators.AccuracyExample> Examples, Evaluators.IAnswerMatcher Matcher) TaskSplit(
        EvaluationCatalogue sets, string task, int? limit = null)
    {
        var split = task switch
        {
            "sst2" => sets.Sst2Dev,
            "ag_news" => sets.AgNewsTest,
            "gsm8k" => sets.Gsm8kTest,
            _ => throw new ArgumentException($"Unknown task '{task}' (expected sst2, ag_news or gsm8k).", nameof(task)),
        };
        var examples = split.Take(limit ?? int.MaxValue).Select(p => new Evaluators.AccuracyExample(p.Prompt, p.Expected)).ToList();
        return (examples, Evaluators.AnswerMatchers.For(task));
    }
}
