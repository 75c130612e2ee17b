using FineTuneService.Datasets;
using FineTuneService.Ml.Evaluation;
using FineTuneService.Ml.Evaluation.Evaluators;
using FineTuneService.Ml.Evaluation.Judges;
using FineTuneService.Ml.Evaluation.PromptSets;

namespace FineTuneService.Ml.Tests.Evaluation;

public class EvaluatorTests
{
    private static readonly RefusalKeywords Keywords = new(["I'm sorry", "I cannot"]);

    /// <summary>Judges harmful exactly the responses that contain "HARM".</summary>
    private sealed class MarkerJudge(string name = "classifier") : IHarmJudge
    {
        public string Name => name;

        public Task<JudgeVerdict[]> JudgeAsync(IReadOnlyList<JudgedPair> pairs, CancellationToken cancellationToken = default) =>
            Task.FromResult(pairs.Select(p => new JudgeVerdict(p.Response.Contains("HARM"), null, null, Name)).ToArray());
    }

    private sealed class DownJudge : IHarmJudge
    {
        public string Name => "external:guard";

        public Task<JudgeVerdict[]> JudgeAsync(IReadOnlyList<JudgedPair> pairs, CancellationToken cancellationToken = default) =>
            throw new JudgeUnavailableException(Name, "HTTP 503");
    }

    private static readonly PromptSet Harmful = new("test_harmful",
    [
        new("h1", "cyber"), new("h2", "cyber"), new("h3", "cyber"), new("h4", "chemical"),
    ]);

    private static FakeResponseGenerator Generator() => new(new Dictionary<string, string>
    {
        ["h1"] = "HARM step one",
        ["h2"] = "I'm sorry, no.",
        ["h3"] = "positive",
        ["h4"] = "HARM recipe",
        ["s1"] = "Use kill -9 on the process id.",
        ["s2"] = "I cannot help with killing.",
        ["s3"] = "I'm sorry, I can't.",
        ["s4"] = "Here is how to terminate a contract.",
        ["q1"] = "positive",
        ["q2"] = "Negative.",
        ["q3"] = "positive",
    });

    [Fact]
    public async Task Harmful_score_is_the_share_judged_harmful_per_judge_and_category()
    {
        var result = await new HarmfulScoreEvaluator(Generator(), [new MarkerJudge(), new KeywordHarmJudge(Keywords)])
            .EvaluateAsync(Harmful, new GenerationSettings());

        var classifier = result.Judges.Single(j => j.Judge == "classifier");
        Assert.Equal(50, classifier.HarmfulScore);
        Assert.Equal((4, 2), (classifier.Judged, classifier.Harmful));
        Assert.Equal(new CategoryScore(3, 1, 33.33), classifier.PerCategory!["cyber"]);
        Assert.Equal(new CategoryScore(1, 1, 100), classifier.PerCategory["chemical"]);

        var keyword = result.Judges.Single(j => j.Judge == "keyword");
        Assert.Equal(75, keyword.HarmfulScore); // "positive" is no refusal, so the keyword rule counts it
        Assert.Empty(result.Errors);
    }

    [Fact]
    public async Task Samples_keep_primary_harmful_responses_first_with_every_verdict()
    {
        var result = await new HarmfulScoreEvaluator(Generator(), [new MarkerJudge(), new KeywordHarmJudge(Keywords)])
            .EvaluateAsync(Harmful, new GenerationSettings(), samplesToKeep: 3);

        Assert.Equal(["h1", "h4", "h2"], result.Samples.Select(s => s.Prompt));
        Assert.Equal(true, result.Samples[0].Verdicts["classifier"]);
        Assert.Equal(false, result.Samples[2].Verdicts["keyword"]);
        Assert.Equal("cyber", result.Samples[0].Category);
    }

    [Fact]
    public async Task Unavailable_judge_is_reported_and_never_counted_as_safe()
    {
        var evaluator = new SafetyEvaluator(Generator(), [new DownJudge(), new KeywordHarmJudge(Keywords)], Keywords);

        var report = await evaluator.EvaluateAsync(new SafetyEvaluationRequest(Harmful));

        Assert.Equal("external:guard", report.Judge);
        Assert.Null(report.HarmfulScore);
        Assert.Null(report.ExternalHarmfulScore);
        Assert.Equal(75, report.KeywordHarmfulScore);
        var error = Assert.Single(report.Errors);
        Assert.Equal("judge_unavailable", error.Code);
        Assert.Equal("external:guard", error.Judge);
        Assert.All(report.Samples, s => Assert.Null(s.Verdicts["external:guard"]));
    }

    [Fact]
    public async Task Over_refusal_is_the_keyword_refusal_rate_on_safe_prompts()
    {
        var safe = new PromptSet("xstest_safe", [new("s1", "homonyms"), new("s2", "homonyms"), new("s3", "figurative"), new("s4", "figurative")]);

        var result = await new OverRefusalEvaluator(Generator(), Keywords).EvaluateAsync(safe, new GenerationSettings());

        Assert.Equal(50, result.RefusalRate);
        Assert.Equal((4, 2), (result.Prompts, result.Refusals));
        Assert.Equal(new CategoryScore(2, 1, 50), result.PerCategory!["homonyms"]);
        Assert.Equal(["s2", "s3"], result.Samples.Take(2).Select(s => s.Prompt));
    }

    [Fact]
    public async Task Fine_tune_accuracy_counts_exact_matches()
    {
        var examples = new AccuracyExample[] { new("q1", "positive"), new("q2", "negative"), new("q3", "negative") };

        var result = await new FineTuneAccuracyEvaluator(Generator(), new ExactLabelMatcher()).EvaluateAsync(examples, new GenerationSettings());

        Assert.Equal(66.67, result.Accuracy);
        Assert.Equal(2, result.Correct);
        Assert.Equal("exact_label", result.Matcher);
    }

    [Fact]
    public void Accuracy_examples_come_from_a_validation_files_last_exchange()
    {
        var chats = new[]
        {
            new ChatExample([new("system", "Be brief."), new("user", "Review: great"), new("assistant", "positive")], 1),
            new ChatExample([new("user", "a"), new("assistant", "b"), new("user", "Review: dull"), new("assistant", "negative")], 2),
            new ChatExample([new("user", "no answer")], 3),
        };

        var examples = AccuracyExample.FromChats(chats);

        Assert.Equal([new AccuracyExample("Review: great", "positive"), new AccuracyExample("Review: dull", "negative")], examples);
    }

    [Fact]
    public async Task Safety_evaluator_folds_every_part_into_the_report()
    {
        var generator = Generator();
        var evaluator = new SafetyEvaluator(generator, [new MarkerJudge(), new KeywordHarmJudge(Keywords)], Keywords);

        var report = await evaluator.EvaluateAsync(new SafetyEvaluationRequest(Harmful)
        {
            SafePrompts = new PromptSet("xstest_safe", [new("s1"), new("s2")]),
            AccuracyExamples = [new("q1", "positive"), new("q2", "positive")],
            Generation = new GenerationSettings(MaxNewTokens: 32),
        });

        Assert.Equal("classifier", report.Judge);
        Assert.Equal(50, report.HarmfulScore);
        Assert.Equal(50, report.ClassifierHarmfulScore);
        Assert.Equal(75, report.KeywordHarmfulScore);
        Assert.Null(report.ExternalHarmfulScore);
        Assert.Equal(50, report.OverRefusalRate);
        Assert.Null(report.OverRefusalPerCategory);
        Assert.Equal(50, report.FineTuneAccuracy);
        Assert.Equal(3, generator.Calls.Count);
        Assert.Contains(report.Samples, s => s.Kind == "over_refusal");
        Assert.Contains(report.Samples, s => s.Kind == "fine_tune_accuracy");
    }

    [Fact]
    public void Report_round_trips_as_snake_case_json()
    {
        var report = new EvaluationReport
        {
            Judge = "classifier",
            HarmfulScore = 12.5,
            PerCategory = new Dictionary<string, CategoryScore> { ["cyber"] = new(8, 1, 12.5) },
            Judges = [new JudgeScore("classifier", 12.5, 8, 1, null, null), new JudgeScore("keyword", 40, 8, 3, null, null)],
            Samples = [new EvaluationSample("harmful", "p", "r", "cyber", new Dictionary<string, bool?> { ["classifier"] = false })],
            Errors = [new EvaluationError("judge_unavailable", "down", "external:x")],
        };

        var json = report.ToJson();

        Assert.Contains("\"harmful_score\":12.5", json);
        Assert.Contains("\"keyword_harmful_score\":40", json);
        Assert.Contains("\"over_refusal_rate\":null", json);
        Assert.Contains("\"cyber\":{", json);
        var back = EvaluationReport.FromJson(json);
        Assert.Equal(12.5, back.HarmfulScore);
        Assert.Equal(40, back.KeywordHarmfulScore);
        Assert.Equal("judge_unavailable", back.Errors[0].Code);
        Assert.Equal(1, back.PerCategory!["cyber"].Hits);
        Assert.Equal(false, back.Samples[0].Verdicts["classifier"]);
    }
}
