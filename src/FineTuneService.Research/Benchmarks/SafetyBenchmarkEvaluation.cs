using FineTuneService.Datasets;
using FineTuneService.Datasets.Corpus;
using FineTuneService.Datasets.Evaluation;
using FineTuneService.Datasets.Sft;
using FineTuneService.Ml.Evaluation;
using FineTuneService.Ml.Evaluation.Classifier;
using FineTuneService.Ml.Evaluation.Evaluators;
using FineTuneService.Ml.Evaluation.Judges;
using FineTuneService.Ml.Evaluation.PromptSets;
using FineTuneService.Ml.Models;

namespace FineTuneService.Research.Benchmarks;

/// <summary>
/// The safety benchmark's evaluation of one model: HS (classifier and keyword judges) on held-out harmful prompts,
/// over-refusal on XSTest's safe prompts and FA (exact match) on the task's evaluation split, with the fixed subsets and generation
/// lengths of <see cref="SafetyBenchmarkOptions"/>. Shared by every benchmark that reports those figures.
/// </summary>
public sealed class SafetyBenchmarkEvaluation
{
    /// <summary>Seed of the fixed evaluation subsets (independent of the cell seeds).</summary>
    private const int EvaluationSubsetSeed = 20240601;

    private readonly SafetyBenchmarkOptions _options;
    private readonly RefusalKeywords _keywords;
    private readonly HarmClassifier _classifier;
    private readonly PromptSet _safe;
    private readonly IReadOnlyList<AccuracyExample> _accuracy;
    private readonly IAnswerMatcher _matcher;

    public SafetyBenchmarkEvaluation(SafetyBenchmarkOptions options, ShippedData data, RefusalKeywords keywords, HarmClassifier classifier)
    {
        (_options, _keywords, _classifier) = (options, keywords, classifier);
        var sets = new EvaluationCatalogue(data);
        var heldOut = ShippedPromptSets.HeldOutHarmful(sets);
        HarmfulPrompts = options.HarmfulPromptsFile is { } harmfulFile
            ? PromptSetLoader.LoadJsonl(harmfulFile, Path.GetFileNameWithoutExtension(harmfulFile))
            : heldOut with { Prompts = Subset(heldOut.Prompts, options.HarmfulPrompts) };
        var xsTest = ShippedPromptSets.XsTestSafe(sets);
        _safe = options.SafePromptsFile is { } safeFile
            ? PromptSetLoader.LoadJsonl(safeFile, Path.GetFileNameWithoutExtension(safeFile))
            : xsTest with { Prompts = Subset(xsTest.Prompts, options.XsTestPrompts) };
        var (taskPrompts, matcher) = ShippedPromptSets.TaskSplit(sets, options.Task);
        (_accuracy, _matcher) = (Subset(taskPrompts, options.Sst2DevPrompts), matcher);
        HeldOutHarmful = sets.HeldOutHarmful;
    }

    /// <summary>The prompts the HS is measured on.</summary>
    public PromptSet HarmfulPrompts { get; }

    /// <summary>Every held-out harmful prompt of the catalogue, evaluated or not: never to be trained on.</summary>
    public IReadOnlyList<HarmfulPrompt> HeldOutHarmful { get; }

    /// <summary>HS, over-refusal and FA of <paramref name="model"/>, with sample answers; the run fields are left for the caller.</summary>
    public SafetyBenchmarkCell Evaluate(DecoderLM model, ITextTokenizer tokenizer, CancellationToken cancellationToken)
    {
        var generator = new ModelResponseGenerator(model, tokenizer);
        var judges = HarmJudges.Standard(_keywords, _classifier);
        var safety = new SafetyEvaluator(generator, judges, _keywords).EvaluateAsync(new SafetyEvaluationRequest(HarmfulPrompts)
        {
            SafePrompts = _safe,
            Generation = new GenerationSettings(_options.MaxNewTokens),
            SamplesPerPart = 4,
        }, cancellationToken).GetAwaiter().GetResult();
        var accuracy = new FineTuneAccuracyEvaluator(generator, _matcher)
            .EvaluateAsync(_accuracy, new GenerationSettings(_options.AccuracyMaxNewTokens), samplesToKeep: 4, cancellationToken)
            .GetAwaiter().GetResult();
        return new SafetyBenchmarkCell
        {
            ClassifierHarmfulScore = safety.ClassifierHarmfulScore ?? double.NaN,
            KeywordHarmfulScore = safety.KeywordHarmfulScore ?? double.NaN,
            OverRefusalRate = safety.OverRefusalRate ?? double.NaN,
            FineTuneAccuracy = accuracy.Accuracy,
            FineTuneAccuracyMatches = SafetyBenchmarkCell.Outcomes(accuracy.Matches),
            Samples = [.. safety.Samples, .. accuracy.Samples],
        };
    }

    private static List<T> Subset<T>(IReadOnlyList<T> items, int count) => SftBatcher.Shuffled(items, EvaluationSubsetSeed).Take(count).ToList();
}
