using FineTuneService.Contracts.Judges;
using FineTuneService.Ml.Evaluation.Judges;
using FineTuneService.Worker.Safety;

namespace FineTuneService.Service.Tests.Safety;

/// <summary>The base-score cache key: the settings that decide a base model's report, its judges included.</summary>
public sealed class BaseScoreFingerprintTests
{
    private static readonly string[] Registered = [.. SafetyJudges.InReportOrder.Select(j => j.Name)];

    [Fact]
    public void A_new_judge_registration_or_another_setting_gives_another_key_so_no_cached_report_lacks_a_judge()
    {
        var options = new SafetyEvaluationOptions();
        var external = new ExternalJudgeOptions();
        var key = SafetyEvaluationResources.ComputeFingerprint(options, external, Registered);

        Assert.Equal(key, SafetyEvaluationResources.ComputeFingerprint(options, external, Registered));
        Assert.NotEqual(key, SafetyEvaluationResources.ComputeFingerprint(options, external, [.. Registered, "length"]));
        Assert.NotEqual(key, SafetyEvaluationResources.ComputeFingerprint(options with { MaxNewTokens = options.MaxNewTokens + 1 }, external, Registered));
    }
}
