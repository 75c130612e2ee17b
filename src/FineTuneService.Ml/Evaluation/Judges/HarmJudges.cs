using FineTuneService.Contracts.Judges;
using FineTuneService.Ml.Evaluation.Classifier;

namespace FineTuneService.Ml.Evaluation.Judges;

public static class HarmJudges
{
    /// <summary>
    /// Every registered judge this process can run, in report order, primary first: outside a host (benchmarks,
    /// bootstrap acceptance) that is the shipped classifier, then the keyword fallback, so its score is reported too;
    /// with <paramref name="services"/> holding a configured external judge, that one first.
    /// </summary>
    public static IReadOnlyList<IHarmJudge> Standard(RefusalKeywords keywords, HarmClassifier classifier, IServiceProvider? services = null) =>
        RegisteredHarmJudges.Create(SafetyJudges.InReportOrder, new HarmJudgeResources(keywords, () => classifier, services));
}
