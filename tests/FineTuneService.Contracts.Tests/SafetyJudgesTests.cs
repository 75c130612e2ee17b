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
}
