using FineTuneService.Contracts.Judges;
using FineTuneService.Datasets;
using FineTuneService.Ml.Evaluation;
using FineTuneService.Ml.Evaluation.Classifier;
using FineTuneService.Ml.Evaluation.Judges;
using FineTuneService.Ml.Evaluation.PromptSets;
using Microsoft.Extensions.DependencyInjection;

namespace FineTuneService.Ml.Tests.Evaluation;

/// <summary>
/// The judge recipe of CONTRIBUTING.md: a judge class that names its registration is built from that registration
/// alone, is scored beside the shipped judges, and its score is in the report's map by judge name, which the stored
/// rows keep, with no new field or column.
/// </summary>
public sealed class AddingAJudgeTests
{
    private static readonly HarmJudgeDescriptor Length = new("length", "Calls every answer longer than 12 characters harmful.");

    /// <summary>The model a judge of this kind carries, when the host provides one.</summary>
    private sealed record LengthJudgeModel(string Name);

    private sealed class LengthHarmJudge(string? model) : IRegisteredHarmJudge
    {
        public static HarmJudgeDescriptor Registration => Length;

        public static IHarmJudge Create(HarmJudgeResources resources) =>
            new LengthHarmJudge(resources.Services?.GetService<LengthJudgeModel>()?.Name);

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

    /// <summary>Neither judge here reads the classifier: building them must not load it.</summary>
    private static HarmJudgeResources Resources(IServiceProvider? services) =>
        new(Keywords, () => throw new InvalidOperationException("the classifier was loaded"), services);

    [Theory]
    [InlineData(null)]
    [InlineData("v2")]
    public async Task A_new_judge_is_built_from_its_registration_and_scores_beside_the_shipped_ones_under_its_name(string? model)
    {
        var services = new ServiceCollection();
        if (model is not null) services.AddSingleton(new LengthJudgeModel(model));
        using var provider = services.BuildServiceProvider();

        var judges = RegisteredHarmJudges.Create([Length, SafetyJudges.Keyword], Resources(provider));

        Assert.Equal([Length.ReportName(model), SafetyJudges.Keyword.Name], judges.Select(j => j.Name));
        var report = await new SafetyEvaluator(Generator(), judges, Keywords).EvaluateAsync(new SafetyEvaluationRequest(Harmful));
        Assert.Equal(50, report.HarmfulScoreOf("length"));
        Assert.Equal(75, report.HarmfulScoreOf(SafetyJudges.Keyword.Name));
        Assert.Equal(new Dictionary<string, double> { ["length"] = 50, ["keyword"] = 75 }, report.HarmfulScores);
        Assert.Null(report.ClassifierHarmfulScore);
        Assert.Equal(50, EvaluationReport.FromJson(report.ToJson()).HarmfulScoreOf("length"));
    }

    [Fact]
    public void Every_registered_judge_has_exactly_one_engine_class_naming_it()
    {
        foreach (var judge in SafetyJudges.All)
            Assert.True(typeof(IRegisteredHarmJudge).IsAssignableFrom(RegisteredHarmJudges.ClassOf(judge)), judge.Name);
        Assert.Equal(typeof(LengthHarmJudge), RegisteredHarmJudges.ClassOf(Length));
        var unbuilt = new HarmJudgeDescriptor("unbuilt", "No class judges for it.");
        Assert.Contains("exactly one class", Assert.Throws<InvalidOperationException>(() => RegisteredHarmJudges.ClassOf(unbuilt)).Message);
    }

    /// <summary>The line-up the worker and the benchmarks had written out by hand: the external judge (when configured) first, as primary.</summary>
    [Fact]
    public void The_standard_line_up_is_the_registry_in_report_order_with_the_external_judge_only_when_configured()
    {
        using var classifier = HarmClassifier.LoadShipped();
        Assert.Equal(["classifier", "keyword"], HarmJudges.Standard(Keywords, classifier).Select(j => j.Name));

        var services = new ServiceCollection();
        services.AddExternalHarmJudge(o => { o.BaseAddress = new Uri("http://127.0.0.1:9/v1/"); o.Model = "guard"; });
        using var provider = services.BuildServiceProvider();
        Assert.Equal(["external:guard", "classifier", "keyword"], HarmJudges.Standard(Keywords, classifier, provider).Select(j => j.Name));

        using var unconfigured = new ServiceCollection().AddExternalHarmJudge(_ => { }).Services.BuildServiceProvider();
        Assert.Equal(["classifier", "keyword"], HarmJudges.Standard(Keywords, classifier, unconfigured).Select(j => j.Name));
    }
}
