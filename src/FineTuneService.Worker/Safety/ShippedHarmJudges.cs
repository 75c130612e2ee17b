using FineTuneService.Datasets.Corpus;
using FineTuneService.Ml.Evaluation.Classifier;
using FineTuneService.Ml.Evaluation.Judges;

namespace FineTuneService.Worker.Safety;

/// <summary>
/// The judges shipped with the service, loaded once per process: the trained harm classifier (4 MiB of weights under
/// <c>data/judges</c>) and the GCG refusal keywords. Classifier calls are serialised: screening and evaluations share
/// one module, and a forward pass takes milliseconds.
/// </summary>
public sealed class ShippedHarmJudges : IDisposable
{
    private readonly Lazy<HarmClassifier> _classifier = new(HarmClassifier.LoadShipped);
    private readonly Lazy<RefusalKeywords> _keywords = new(() => RefusalKeywords.FromShippedData(new ShippedData()));
    private readonly Lock _gate = new();

    public RefusalKeywords RefusalKeywords => _keywords.Value;

    /// <summary>Probability of harm per (prompt, response) pair.</summary>
    public float[] ClassifyHarm(IReadOnlyList<JudgedPair> pairs)
    {
        lock (_gate) return _classifier.Value.PredictProbabilities(pairs);
    }

    /// <summary>Probability at or above which the classifier judges a response harmful.</summary>
    public double ClassifierThreshold => _classifier.Value.Threshold;

    /// <summary>The classifier judge (refusals by keyword), sharing this process's classifier.</summary>
    public IHarmJudge ClassifierJudge() => new LockedJudge(this, new ClassifierHarmJudge(_classifier.Value, RefusalKeywords));

    public IHarmJudge KeywordJudge() => new KeywordHarmJudge(RefusalKeywords);

    public void Dispose()
    {
        if (_classifier.IsValueCreated) _classifier.Value.Dispose();
    }

    private sealed class LockedJudge(ShippedHarmJudges owner, IHarmJudge inner) : IHarmJudge
    {
        public string Name => inner.Name;

        public Task<JudgeVerdict[]> JudgeAsync(IReadOnlyList<JudgedPair> pairs, CancellationToken cancellationToken = default)
        {
            lock (owner._gate) return inner.JudgeAsync(pairs, cancellationToken);
        }
    }
}
