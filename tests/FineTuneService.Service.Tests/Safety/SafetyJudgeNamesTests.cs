using FineTuneService.Contracts.Judges;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Safety;

namespace FineTuneService.Service.Tests.Safety;

/// <summary>Every stored judge kind is a registered judge, named on the wire as registered, and read back from that name.</summary>
public sealed class SafetyJudgeNamesTests
{
    [Fact]
    public void Every_judge_kind_round_trips_through_its_registered_name()
    {
        foreach (var kind in Enum.GetValues<SafetyJudgeKind>())
        {
            var name = SafetyNames.Of(kind);
            Assert.NotNull(SafetyJudges.Find(name));
            Assert.Equal(kind, SafetyNames.ParseJudge(name));
        }
        Assert.Equal(SafetyJudges.All.Count, Enum.GetValues<SafetyJudgeKind>().Length);
        Assert.Contains(SafetyJudges.NameList, Assert.Throws<FormatException>(() => SafetyNames.ParseJudge("llama")).Message);
    }
}
