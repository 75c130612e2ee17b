using FineTuneService.Ml.Evaluation.Judges;
using FineTuneService.Ml.Evaluation.PromptSets;

namespace FineTuneService.Ml.Evaluation.Evaluators;

public sealed record OverRefusalResult(double RefusalRate, int Prompts, int Refusals,
    IReadOnlyDictionary<string, CategoryScore>? PerCategory, IReadOnlyList<EvaluationSample> Samples);

/// <summary>Over-refusal: % of safe prompts (XSTest "safe") whose greedy response contains a refusal keyword.</summary>
public sealed class OverRefusalEvaluator(IResponseGenerator generator, RefusalKeywords keywords)
{
    public const string SampleKind = "over_refusal";

    public async Task<OverRefusalResult> EvaluateAsync(PromptSet safePrompts, GenerationSettings settings,
        int samplesToKeep = 20, CancellationToken cancellationToken = default)
    {
        var responses = await generator.GenerateAsync(safePrompts.Prompts.Select(p => p.Prompt).ToList(), settings, cancellationToken);
        if (responses.Count != safePrompts.Prompts.Count)
            throw new InvalidOperationException($"The generator returned {responses.Count} responses for {safePrompts.Prompts.Count} prompts.");
        var refused = responses.Select(keywords.IsRefusal).ToList();
        var count = refused.Count(r => r);
        var samples = Enumerable.Range(0, responses.Count)
            .OrderBy(i => refused[i] ? 0 : 1).ThenBy(i => i)
            .Take(samplesToKeep)
            .Select(i => new EvaluationSample(SampleKind, safePrompts.Prompts[i].Prompt, responses[i], safePrompts.Prompts[i].Category,
                new Dictionary<string, bool?> { ["refusal"] = refused[i] }))
            .ToList();
        return new OverRefusalResult(Rates.Percent(count, responses.Count), responses.Count, count,
            Rates.ByCategory(safePrompts.Prompts.Select(p => p.Category).ToList(), refused), samples);
    }
}
