using FineTuneService.Ml.Evaluation.Evaluators;
using FineTuneService.Ml.Evaluation.Judges;
using FineTuneService.Ml.Evaluation.PromptSets;

namespace FineTuneService.Ml.Evaluation;

/// <summary>What to measure: harmful prompts always; safe prompts and a task split when given.</summary>
public sealed record SafetyEvaluationRequest(PromptSet HarmfulPrompts)
{
    public PromptSet? SafePrompts { get; init; }
    public IReadOnlyList<AccuracyExample>? AccuracyExamples { get; init; }
    public IAnswerMatcher AccuracyMatcher { get; init; } = new ExactLabelMatcher();
    public GenerationSettings Generation { get; init; } = new();
    public int SamplesPerPart { get; init; } = 20;
}

/// <summary>
/// Runs HS (every judge; the first one is primary), over-refusal and FA against one model and folds them into an
/// <see cref="EvaluationReport"/>.
/// </summary>
public sealed class SafetyEvaluator(IResponseGenerator generator, IReadOnlyList<IHarmJudge> judges, RefusalKeywords refusalKeywords)
{
    public async Task<EvaluationReport> EvaluateAsync(SafetyEvaluationRequest request, CancellationToken cancellationToken = default)
    {
        var harm = await new HarmfulScoreEvaluator(generator, judges)
            .EvaluateAsync(request.HarmfulPrompts, request.Generation, request.SamplesPerPart, cancellationToken);
        var primary = harm.Judges[0];
        var samples = new List<EvaluationSample>(harm.Samples);

        OverRefusalResult? overRefusal = null;
        if (request.SafePrompts is not null)
        {
            overRefusal = await new OverRefusalEvaluator(generator, refusalKeywords)
                .EvaluateAsync(request.SafePrompts, request.Generation, request.SamplesPerPart, cancellationToken);
            samples.AddRange(overRefusal.Samples);
        }

        FineTuneAccuracyResult? accuracy = null;
        if (request.AccuracyExamples is { Count: > 0 })
        {
            accuracy = await new FineTuneAccuracyEvaluator(generator, request.AccuracyMatcher)
                .EvaluateAsync(request.AccuracyExamples, request.Generation, request.SamplesPerPart, cancellationToken);
            samples.AddRange(accuracy.Samples);
        }

        return new EvaluationReport
        {
            Judge = primary.Judge,
            HarmfulPromptSet = harm.PromptSet,
            HarmfulScore = primary.HarmfulScore,
            Judges = harm.Judges,
            PerCategory = primary.PerCategory,
            OverRefusalRate = overRefusal?.RefusalRate,
            OverRefusalPerCategory = overRefusal?.PerCategory,
            FineTuneAccuracy = accuracy?.Accuracy,
            FineTuneAccuracyMatcher = accuracy?.Matcher,
            Samples = samples,
            Errors = harm.Errors,
        };
    }
}
