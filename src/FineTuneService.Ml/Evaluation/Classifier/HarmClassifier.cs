using System.Globalization;
using System.Text.Json;
using FineTuneService.Ml.Evaluation.Judges;
using FineTuneService.Ml.SafeTensors;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Evaluation.Classifier;

/// <summary>Shape of the harm classifier; stored in the weights file's metadata.</summary>
public sealed record HarmClassifierShape(int Buckets = 1 << 16, int Hidden = 16);

/// <summary>
/// The project's trained harmfulness classifier over (prompt, response) pairs (trained by <c>fts classifier train</c>).
/// Weights live in a safetensors file; the shipped one is <see cref="ShippedRelativePath"/>.
/// </summary>
public sealed class HarmClassifier : IDisposable
{
    public const string ShippedRelativePath = "data/judges/harm_classifier.safetensors";
    private const string FormatName = "fts-harm-classifier";

    private readonly HarmClassifierModule module;
    private readonly HashedTextFeatures features;
    private readonly Lock predictGate = new();

    internal HarmClassifier(HarmClassifierModule module, HarmClassifierShape shape, IEnumerable<string> refusalMarkers, double threshold = 0.5)
    {
        this.module = module;
        Shape = shape;
        Threshold = threshold;
        features = new HashedTextFeatures(shape.Buckets, refusalMarkers);
        module.eval();
    }

    public HarmClassifierShape Shape { get; }

    /// <summary>Probability at or above which a response is judged harmful.</summary>
    public double Threshold { get; private set; }

    /// <summary>The refusal markers the features were trained with (stored with the weights).</summary>
    public IReadOnlyList<string> RefusalMarkers => features.RefusalMarkers;

    internal HashedTextFeatures Features => features;

    internal HarmClassifierModule Module => module;

    /// <summary>
    /// Probability of harm per pair, in order. Calls are serialised, so one classifier can be shared by a process
    /// (screening, evaluations, the output guard): a forward pass takes milliseconds.
    /// </summary>
    public float[] PredictProbabilities(IReadOnlyList<JudgedPair> pairs, int batchSize = 64)
    {
        lock (predictGate) return Predict(pairs, batchSize);
    }

    private float[] Predict(IReadOnlyList<JudgedPair> pairs, int batchSize)
    {
        var probabilities = new float[pairs.Count];
        using var _ = no_grad();
        for (var start = 0; start < pairs.Count; start += batchSize)
        {
            var rows = pairs.Skip(start).Take(batchSize).Select(p => features.Extract(p.Prompt, p.Response)).ToList();
            using var scope = NewDisposeScope();
            var (buckets, offsets, weights) = HarmClassifierModule.Pack(rows);
            var batch = module.forward(buckets, offsets, weights).sigmoid().data<float>().ToArray();
            batch.CopyTo(probabilities, start);
        }
        return probabilities;
    }

    public void Save(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        SafeTensorsWriter.Save(path, module.state_dict(), new Dictionary<string, string>
        {
            ["format"] = FormatName,
            ["feature_version"] = HashedTextFeatures.Version.ToString(CultureInfo.InvariantCulture),
            ["buckets"] = Shape.Buckets.ToString(CultureInfo.InvariantCulture),
            ["hidden"] = Shape.Hidden.ToString(CultureInfo.InvariantCulture),
            ["threshold"] = Threshold.ToString("R", CultureInfo.InvariantCulture),
            ["refusal_markers"] = JsonSerializer.Serialize(RefusalMarkers),
        });
    }

    public static HarmClassifier Load(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"Harm classifier weights not found at {path}; run `fts classifier train` to build them.", path);
        using var file = SafeTensorsFile.Open(path);
        var metadata = file.Metadata;
        if (metadata.GetValueOrDefault("format") != FormatName)
            throw new InvalidDataException($"{path}: not a harm classifier weights file (format '{metadata.GetValueOrDefault("format")}').");
        if (metadata.GetValueOrDefault("feature_version") != HashedTextFeatures.Version.ToString(CultureInfo.InvariantCulture))
            throw new InvalidDataException($"{path}: built with feature version {metadata.GetValueOrDefault("feature_version")}, this code uses {HashedTextFeatures.Version}; retrain it with `fts classifier train`.");

        var shape = new HarmClassifierShape(
            int.Parse(metadata["buckets"], CultureInfo.InvariantCulture),
            int.Parse(metadata["hidden"], CultureInfo.InvariantCulture));
        var threshold = double.Parse(metadata["threshold"], CultureInfo.InvariantCulture);
        var markers = JsonSerializer.Deserialize<string[]>(metadata.GetValueOrDefault("refusal_markers") ?? "[]")
            ?? throw new InvalidDataException($"{path}: refusal_markers metadata is not a JSON string array.");
        var module = new HarmClassifierModule(shape.Buckets, shape.Hidden);
        foreach (var (name, parameter) in module.named_parameters())
        {
            if (!file.Tensors.ContainsKey(name)) throw new InvalidDataException($"{path}: tensor '{name}' is missing.");
            file.CopyTo(name, parameter);
        }
        return new HarmClassifier(module, shape, markers, threshold);
    }

    /// <summary>Loads the weights shipped next to the application.</summary>
    public static HarmClassifier LoadShipped() => Load(ShippedPath);

    /// <summary>SHA-256 of the shipped weights: a retrained judge changes every classifier HS, so score caches key on it.</summary>
    public static string ShippedWeightsSha256()
    {
        using var stream = File.OpenRead(ShippedPath);
        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(stream));
    }

    private static string ShippedPath => Path.Combine(AppContext.BaseDirectory, ShippedRelativePath);

    /// <summary>Sets the decision threshold (the trainer calibrates it on a split of the training data).</summary>
    internal void Calibrate(double threshold) =>
        Threshold = threshold is > 0 and < 1 ? threshold : throw new ArgumentOutOfRangeException(nameof(threshold));

    public void Dispose() => module.Dispose();
}
