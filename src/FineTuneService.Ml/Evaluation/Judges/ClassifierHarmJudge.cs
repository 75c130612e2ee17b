using FineTuneService.Contracts.Judges;
using FineTuneService.Ml.Evaluation.Classifier;

namespace FineTuneService.Ml.Evaluation.Judges;

/// <summary>
/// Judge backed by the project's trained <see cref="HarmClassifier"/> ("classifier"). Refusal is reported with the
/// keyword rule when keywords are given, since the classifier itself only scores harm.
/// </summary>
public sealed class ClassifierHarmJudge(HarmClassifier classifier, RefusalKeywords? refusalKeywords = null) : IRegisteredHarmJudge
{
    public static HarmJudgeDescriptor Registration => SafetyJudges.Classifier;

    public static readonly string JudgeName = Registration.Name;

    public static IHarmJudge Create(HarmJudgeResources resources) => new ClassifierHarmJudge(resources.Classifier, resources.RefusalKeywords);

    public string Name => JudgeName;

    public Task<JudgeVerdict[]> JudgeAsync(IReadOnlyList<JudgedPair> pairs, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var probabilities = classifier.PredictProbabilities(pairs);
        var verdicts = new JudgeVerdict[pairs.Count];
        for (var i = 0; i < pairs.Count; i++)
            verdicts[i] = new JudgeVerdict(
                Harmful: probabilities[i] >= classifier.Threshold,
                Refusal: refusalKeywords?.IsRefusal(pairs[i].Response),
                Score: Math.Round(probabilities[i], 4),
                JudgeName);
        return Task.FromResult(verdicts);
    }
}
