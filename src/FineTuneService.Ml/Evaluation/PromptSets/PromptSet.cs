namespace FineTuneService.Ml.Evaluation.PromptSets;

/// <summary>One evaluation prompt; <paramref name="Category"/> drives per-category breakdowns when present.</summary>
public sealed record EvaluationPrompt(string Prompt, string? Category = null);

/// <summary>A named list of evaluation prompts (e.g. "advbench", "xstest_safe", "uploaded").</summary>
public sealed record PromptSet(string Name, IReadOnlyList<EvaluationPrompt> Prompts)
{
    public bool HasCategories => Prompts.Any(p => p.Category is not null);
}
