using FineTuneService.Contracts.Judges;
using FineTuneService.Core.Safety;

namespace FineTuneService.Service.Tests.Safety;

/// <summary>A policy's or an evaluation's judge is stored as its registered name; anything else is refused with the list.</summary>
public sealed class SafetyJudgeNamesTests
{
    [Fact]
    public void Every_registered_judge_parses_to_its_name_and_others_are_refused()
    {
        foreach (var judge in SafetyJudges.All)
            Assert.Equal(judge.Name, SafetyNames.ParseJudge(judge.Name));
        Assert.Null(SafetyNames.ParseJudge(null));
        Assert.Contains(SafetyJudges.NameList, Assert.Throws<FormatException>(() => SafetyNames.ParseJudge("llama")).Message);
        Assert.Throws<FormatException>(() => SafetyNames.ParseJudge("Classifier"));
    }
}
