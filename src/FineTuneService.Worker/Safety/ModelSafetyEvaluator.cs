using FineTuneService.Datasets;
using FineTuneService.Ml.Evaluation;
using FineTuneService.Ml.Evaluation.Evaluators;
using FineTuneService.Ml.Models;
using FineTuneService.Worker.Telemetry;

namespace FineTuneService.Worker.Safety;

/// <summary>
/// Scores one loaded model synchronously on the calling (training) thread: HS under every judge, over-refusal on
/// XSTest and FA on the given examples. Generation runs under no_grad in eval mode and leaves the model's mode as found.
/// </summary>
public sealed class ModelSafetyEvaluator(SafetyEvaluationResources resources, WorkerMetrics metrics)
{
    public EvaluationReport Evaluate(DecoderLM model, ITextTokenizer tokenizer, AccuracySet? accuracy, CancellationToken cancellationToken)
    {
        using var timing = metrics.TimeEvaluation();
        var o = resources.Options;
        var request = new SafetyEvaluationRequest(resources.HarmfulPrompts)
        {
            SafePrompts = resources.SafePrompts,
            AccuracyExamples = accuracy?.Examples,
            AccuracyMatcher = accuracy?.Matcher ?? new ExactLabelMatcher(),
            Generation = new GenerationSettings(o.MaxNewTokens),
            SamplesPerPart = o.SamplesPerPart,
        };
        var evaluator = new SafetyEvaluator(Generator(model, tokenizer), resources.Judges(), resources.RefusalKeywords);
        // The model generator is synchronous; only an external judge awaits I/O, and Hangfire's worker thread has no
        // synchronization context, so blocking here cannot deadlock.
        return evaluator.EvaluateAsync(request, cancellationToken).GetAwaiter().GetResult();
    }

    /// <summary>FA alone (the base model's safety scores came from the cache).</summary>
    public FineTuneAccuracyResult EvaluateAccuracy(DecoderLM model, ITextTokenizer tokenizer, AccuracySet accuracy, CancellationToken cancellationToken) =>
        new FineTuneAccuracyEvaluator(Generator(model, tokenizer), accuracy.Matcher)
            .EvaluateAsync(accuracy.Examples, new GenerationSettings(resources.Options.MaxNewTokens), resources.Options.SamplesPerPart, cancellationToken)
            .GetAwaiter().GetResult();

    private ModelResponseGenerator Generator(DecoderLM model, ITextTokenizer tokenizer) =>
        new(model, tokenizer, batchSize: resources.Options.BatchSize);
}

/// <summary>The examples FA is measured on and how answers are matched.</summary>
public sealed record AccuracySet(IReadOnlyList<AccuracyExample> Examples, IAnswerMatcher Matcher, string Source);
