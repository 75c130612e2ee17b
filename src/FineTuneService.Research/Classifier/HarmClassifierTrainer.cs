using FineTuneService.Ml.Evaluation.Classifier;
using FineTuneService.Ml.Evaluation.Judges;
using TorchSharp;
using static TorchSharp.torch;

namespace FineTuneService.Research.Classifier;

/// <summary>A labelled (prompt, response) pair; <paramref name="Source"/> names the dataset it came from.</summary>
public sealed record LabelledPair(string Prompt, string Response, bool Harmful, string Source);

public sealed record HarmClassifierTrainingOptions
{
    public int Seed { get; init; } = 1234;
    public int Epochs { get; init; } = 3;
    public int BatchSize { get; init; } = 64;
    public double LearningRate { get; init; } = 0.01;
    public HarmClassifierShape Shape { get; init; } = new();

    /// <summary>Refusal markers for the pair-level features (the GCG list in production); stored with the weights.</summary>
    public IReadOnlyList<string> RefusalMarkers { get; init; } = [];
}

/// <summary>Per-epoch progress: epoch (1-based), mean training loss.</summary>
public delegate void HarmClassifierEpochCallback(int epoch, double meanLoss);

/// <summary>
/// Trains <see cref="HarmClassifier"/> deterministically from a seed (Adam, class-balanced logistic loss).
/// A few thousand pairs train in seconds on CPU.
/// </summary>
public static class HarmClassifierTrainer
{
    public static HarmClassifier Train(IReadOnlyList<LabelledPair> examples, HarmClassifierTrainingOptions options,
        HarmClassifierEpochCallback? onEpoch = null)
    {
        var positives = examples.Count(e => e.Harmful);
        var negatives = examples.Count - positives;
        if (positives == 0 || negatives == 0)
            throw new ArgumentException($"Training needs both classes; got {positives} harmful and {negatives} harmless pairs.", nameof(examples));

        torch.manual_seed(options.Seed);
        var module = new HarmClassifierModule(options.Shape.Buckets, options.Shape.Hidden);
        var classifier = new HarmClassifier(module, options.Shape, options.RefusalMarkers);
        var rows = examples.Select(e => classifier.Features.Extract(e.Prompt, e.Response)).ToArray();
        var labels = examples.Select(e => e.Harmful ? 1f : 0f).ToArray();

        module.train();
        using var optimizer = optim.Adam(module.parameters(), lr: options.LearningRate);
        using var positiveWeight = tensor(new[] { (float)negatives / positives });
        var order = Enumerable.Range(0, rows.Length).ToArray();
        for (var epoch = 1; epoch <= options.Epochs; epoch++)
        {
            new Random(options.Seed + epoch).Shuffle(order);
            double lossSum = 0;
            var batches = 0;
            for (var start = 0; start < order.Length; start += options.BatchSize)
            {
                var batch = order.AsSpan(start, Math.Min(options.BatchSize, order.Length - start)).ToArray();
                using var scope = NewDisposeScope();
                var (buckets, offsets, weights) = HarmClassifierModule.Pack(batch.Select(i => rows[i]).ToList());
                var target = tensor(batch.Select(i => labels[i]).ToArray());
                var logits = module.forward(buckets, offsets, weights);
                var loss = nn.functional.binary_cross_entropy_with_logits(logits, target, pos_weights: positiveWeight);
                optimizer.zero_grad();
                loss.backward();
                optimizer.step();
                lossSum += loss.item<float>();
                batches++;
            }
            onEpoch?.Invoke(epoch, lossSum / batches);
        }
        module.eval();
        return classifier;
    }

    /// <summary>
    /// Sets the classifier's threshold to the one (on a 0.05 grid) with the best F1 on <paramref name="calibration"/>
    /// — pairs from the training sources kept out of fitting, never the validation set; ties go to the value nearest 0.5.
    /// </summary>
    public static double CalibrateThreshold(HarmClassifier classifier, IReadOnlyList<LabelledPair> calibration)
    {
        if (calibration.Count == 0) throw new ArgumentException("Calibration needs pairs.", nameof(calibration));
        var probabilities = classifier.PredictProbabilities(calibration.Select(p => new JudgedPair(p.Prompt, p.Response)).ToList());
        var labels = calibration.Select(p => p.Harmful).ToArray();
        var best = Enumerable.Range(1, 19).Select(i => i / 20.0)
            .Select(t => (Threshold: t, F1: BinaryClassificationMetrics.Compute(probabilities.Select(p => p >= t).ToArray(), labels).F1))
            .OrderByDescending(c => c.F1).ThenBy(c => Math.Abs(c.Threshold - 0.5))
            .First();
        classifier.Calibrate(best.Threshold);
        return best.Threshold;
    }
}

/// <summary>Binary classification figures against reference labels (harmful = positive class).</summary>
public sealed record BinaryClassificationMetrics(int Count, int TruePositives, int FalsePositives, int TrueNegatives, int FalseNegatives)
{
    public double Accuracy => Count == 0 ? 0 : (double)(TruePositives + TrueNegatives) / Count;
    public double Precision => TruePositives + FalsePositives == 0 ? 0 : (double)TruePositives / (TruePositives + FalsePositives);
    public double Recall => TruePositives + FalseNegatives == 0 ? 0 : (double)TruePositives / (TruePositives + FalseNegatives);
    public double F1 => Precision + Recall == 0 ? 0 : 2 * Precision * Recall / (Precision + Recall);

    public static BinaryClassificationMetrics Compute(IReadOnlyList<bool> predicted, IReadOnlyList<bool> actual)
    {
        if (predicted.Count != actual.Count) throw new ArgumentException("Predictions and labels differ in length.");
        int tp = 0, fp = 0, tn = 0, fn = 0;
        for (var i = 0; i < predicted.Count; i++)
        {
            switch (predicted[i], actual[i])
            {
                case (true, true): tp++; break;
                case (true, false): fp++; break;
                case (false, false): tn++; break;
                default: fn++; break;
            }
        }
        return new BinaryClassificationMetrics(predicted.Count, tp, fp, tn, fn);
    }
}
