using FineTuneService.Ml.Evaluation.Classifier;

namespace FineTuneService.Ml.Evaluation.Judges;

public static class HarmJudges
{
    /// <summary>
    /// The standard judge line-up, primary first: the external judge when one is configured, else the shipped
    /// classifier; the keyword fallback always runs alongside so its score is reported too.
    /// </summary>
    public static IReadOnlyList<IHarmJudge> Standard(RefusalKeywords keywords, HarmClassifier classifier, IHarmJudge? external = null)
    {
        var judges = new List<IHarmJudge>();
        if (external is not null) judges.Add(external);
        judges.Add(new ClassifierHarmJudge(classifier, keywords));
        judges.Add(new KeywordHarmJudge(keywords));
        return judges;
    }
}
