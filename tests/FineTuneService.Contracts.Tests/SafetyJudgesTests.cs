using FineTuneService.Contracts.Judges;

namespace FineTuneService.Contracts.Tests;

public sealed class SafetyJudgesTests
{
    [Fact]
    public void Judges_are_registered_once_each_and_found_by_name()
    {
        Assert.Equal(SafetyJudges.All.Count, SafetyJudges.All.Select(j => j.Name).Distinct().Count());
        Assert.Same(SafetyJudges.Keyword, SafetyJudges.Find("keyword"));
        Assert.Null(SafetyJudges.Find("Keyword"));
        Assert.Equal("classifier, external or keyword", SafetyJudges.NameList);
        Assert.Equal("external:llama-guard", SafetyJudges.External.ReportName("llama-guard"));
    }

    /// <summary>The registration lines fill <see cref="SafetyJudges.All"/> in the order they are written; evaluations run them in report order.</summary>
    [Fact]
    public void Registrations_list_themselves_and_run_in_report_order_primary_first()
    {
        Assert.Equal([SafetyJudges.Classifier, SafetyJudges.External, SafetyJudges.Keyword], SafetyJudges.All);
        Assert.Equal(["external", "classifier", "keyword"], SafetyJudges.InReportOrder.Select(j => j.Name));
        Assert.Equal(HarmJudgeDescriptor.AfterShippedJudges, new HarmJudgeDescriptor("new", "A new judge.").ReportOrder);
        Assert.All(SafetyJudges.All, j => Assert.True(j.ReportOrder < HarmJudgeDescriptor.AfterShippedJudges));
    }
}
