using FineTuneService.Datasets.Corpus;
using FineTuneService.Ml.Evaluation.Classifier;
using FineTuneService.Ml.Evaluation.Judges;

namespace FineTuneService.Worker.Safety;

/// <summary>
/// What the judges shipped with the service load, once per process: the trained harm classifier (4 MiB of weights
/// under <c>data/judges</c>, shared by screening, evaluations and the output guard; it serialises its own calls) and
/// the GCG refusal keywords. <see cref="Resources"/> hands them, with the host's services, to the registered judges.
/// </summary>
public sealed class ShippedHarmJudges(IServiceProvider services) : IDisposable
{
    private readonly Lazy<HarmClassifier> _classifier = new(HarmClassifier.LoadShipped);
    private readonly Lazy<RefusalKeywords> _keywords = new(() => RefusalKeywords.FromShippedData(new ShippedData()));

    public RefusalKeywords RefusalKeywords => _keywords.Value;

    /// <summary>What the registered judges are built from (<see cref="RegisteredHarmJudges"/>); the classifier loads on first use.</summary>
    public HarmJudgeResources Resources => new(RefusalKeywords, () => _classifier.Value, services);

    /// <summary>Probability of harm per (prompt, response) pair.</summary>
    public float[] ClassifyHarm(IReadOnlyList<JudgedPair> pairs) => _classifier.Value.PredictProbabilities(pairs);

    /// <summary>Probability at or above which the classifier judges a response harmful.</summary>
    public double ClassifierThreshold => _classifier.Value.Threshold;

    public void Dispose()
    {
        if (_classifier.IsValueCreated) _classifier.Value.Dispose();
    }
}
