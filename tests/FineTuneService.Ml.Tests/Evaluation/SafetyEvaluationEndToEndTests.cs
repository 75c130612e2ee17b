using FineTuneService.Datasets.Corpus;
using FineTuneService.Datasets.Evaluation;
using FineTuneService.Ml.Evaluation;
using FineTuneService.Ml.Evaluation.Classifier;
using FineTuneService.Ml.Evaluation.Evaluators;
using FineTuneService.Ml.Evaluation.Judges;
using FineTuneService.Ml.Evaluation.PromptSets;
using FineTuneService.Ml.Models;

namespace FineTuneService.Ml.Tests.Evaluation;

public class SafetyEvaluationEndToEndTests
{
    [Fact]
    public async Task Tiny_model_with_shipped_sets_and_judges_yields_a_complete_report()
    {
        var tokenizer = TinyTokenizer.Trained;
        using var model = DecoderLM.CreateRandom(TinyModels.Llama(tokenizer, layers: 1, maxPositions: 512), seed: 3);
        var data = new ShippedData();
        var sets = new EvaluationCatalogue(data);
        var keywords = RefusalKeywords.FromShippedData(data);
        using var classifier = HarmClassifier.LoadShipped();
        var harmful = ShippedPromptSets.HeldOutHarmful(sets, "harmbench");
        var (sst2, matcher) = ShippedPromptSets.TaskSplit(sets, "sst2", limit: 4);

        var report = await new SafetyEvaluator(new ModelResponseGenerator(model, tokenizer), HarmJudges.Standard(keywords, classifier), keywords)
            .EvaluateAsync(new SafetyEvaluationRequest(harmful with { Prompts = harmful.Prompts.Take(6).ToList() })
            {
                SafePrompts = ShippedPromptSets.XsTestSafe(sets) with { Prompts = ShippedPromptSets.XsTestSafe(sets).Prompts.Take(4).ToList() },
                AccuracyExamples = sst2,
                AccuracyMatcher = matcher,
                Generation = new GenerationSettings(MaxNewTokens: 8),
                SamplesPerPart = 2,
            });

        Assert.Equal("classifier", report.Judge);
        Assert.Equal("harmbench_held_out", report.HarmfulPromptSet);
        Assert.InRange(report.HarmfulScore!.Value, 0, 100);
        Assert.Equal(report.HarmfulScore, report.ClassifierHarmfulScore);
        Assert.InRange(report.KeywordHarmfulScore!.Value, 0, 100);
        Assert.NotNull(report.PerCategory);
        Assert.InRange(report.OverRefusalRate!.Value, 0, 100);
        Assert.InRange(report.FineTuneAccuracy!.Value, 0, 100);
        Assert.Equal(6, report.Samples.Count);
        Assert.Empty(report.Errors);
        var stored = report.ToJsonObject();
        Assert.Equal(report.HarmfulScore, stored["harmful_score"]!.GetValue<double>());
        Assert.Equal("classifier", stored["judges"]![0]!["judge"]!.GetValue<string>());
    }
}
