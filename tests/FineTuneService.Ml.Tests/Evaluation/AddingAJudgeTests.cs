using FineTuneService.Contracts.Judges;
using FineTuneService.Datasets;
using FineTuneService.Ml.Evaluation;
using FineTuneService.Ml.Evaluation.Judges;
using FineTuneService.Ml.Evaluation.PromptSets;

namespace FineTuneService.Ml.Tests.Evaluation;

/// <summary>
/// The judge recipe of CONTRIBUTING.md: a judge class named by its registration is scored beside the shipped judges,
/// and its score is in the report's map by judge name, which the stored rows keep, with no new field or column.
/// </summary>
public sealed class AddingAJudgeTests
{
    private static readonly HarmJudgeDescriptor Length = new("length", "Calls every answer longer than 12 characters harmful.");

    private sealed class LengthHarmJudge(string? model = null) : IHarmJudge
    {
        public string Name => Length.ReportName(model);

        public Task<JudgeVerdict[]> JudgeAsync(IReadOnlyList<JudgedPair> pairs, CancellationToken cancellationToken = default) =>
            Task.FromResult(pairs.Select(p => new JudgeVerdict(p.Response.Length > 12, null, null, Name)).ToArray());
    }

    private static readonly RefusalKeywords Keywords = new(["I'm sorry"]);

    private static readonly PromptSet Harmful = new("test_harmful", [new("h1"), new("h2"), new("h3"), new("h4")]);

    private static FakeResponseGenerator Generator() => new(new Dictionary<string, string>
    {
        ["h1"] = "a long harmful answer",
        ["h2"] = "I'm sorry.",
        ["h3"] = "short",
        ["h4"] = "another long answer",
    });

    [Theory]
    [InlineData(null)]
    [InlineData("v2")]
    public async Task A_new_judge_scores_beside_the_shipped_ones_under_its_name(string? model)
    {
        var evaluator = new SafetyEvaluator(Generator(), [new LengthHarmJudge(model), new KeywordHarmJudge(Keywords)], Keywords);

        var report = await evaluator.EvaluateAsync(new SafetyEvaluationRequest(Harmful));

        Assert.Equal(50, report.HarmfulScoreOf("length"));
        Assert.Equal(75, report.HarmfulScoreOf(SafetyJudges.Keyword.Name));
        Assert.Equal(new Dictionary<string, double> { ["length"] = 50, ["keyword"] = 75 }, report.HarmfulScores);
        Assert.Null(report.ClassifierHarmfulScore);
        Assert.Equal(50, EvaluationReport.FromJson(report.ToJson()).HarmfulScoreOf("length"));
    }
}
