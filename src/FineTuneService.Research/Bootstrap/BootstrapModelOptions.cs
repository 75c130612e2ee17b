using FineTuneService.Datasets.Sft;
using System.Text.Json;
using FineTuneService.Ml.Training;

namespace FineTuneService.Research.Bootstrap;

/// <summary>
/// Shape and training budget of the bootstrap aligned model. <see cref="SafetuneTiny"/> is the service's base model;
/// <see cref="TestSize"/> builds in seconds for tests.
/// </summary>
public sealed record BootstrapModelOptions
{
    public string Name { get; init; } = "safetune-tiny";
    /// <summary>BPE vocabulary trained on the corpus; a larger one shortens sequences, which is what a 2-core budget buys.</summary>
    public int VocabularySize { get; init; } = 4096;
    public int HiddenSize { get; init; } = 256;
    public int Layers { get; init; } = 6;
    public int AttentionHeads { get; init; } = 8;
    public int KeyValueHeads { get; init; } = 4;
    public int IntermediateSize { get; init; } = 768;
    /// <summary>Packed row length; chat examples longer than this are cut.</summary>
    public int MaxSequenceLength { get; init; } = 256;
    public int BatchSize { get; init; } = 16;
    /// <summary>One pass over the mix; the corpus repeats what should be seen more than once (<see cref="BootstrapCorpusOptions.Passes"/>).</summary>
    public int Epochs { get; init; } = 1;
    /// <summary>Caps the optimizer steps; null trains <see cref="Epochs"/> full epochs.</summary>
    public int? MaxSteps { get; init; }
    public double LearningRate { get; init; } = 2e-3;
    public double WarmupRatio { get; init; } = 0.03;
    public double WeightDecay { get; init; } = 0.05;
    public long Seed { get; init; } = 1234;

    /// <summary>
    /// Per token by default. Per example (attempt 3) weighs the short templated refusals' first tokens far above long
    /// benign answers' and made the model refuse 99.6% of XSTest's safe prompts, without teaching SST-2.
    /// </summary>
    public LossAveraging LossAveraging { get; init; } = LossAveraging.PerToken;

    public BootstrapCorpusOptions Corpus { get; init; } = new();

    /// <summary>The second phase, over <see cref="BootstrapCorpus.SentimentMix"/>.</summary>
    public BootstrapPhaseOptions SentimentPhase { get; init; } = new();

    public static BootstrapModelOptions SafetuneTiny { get; } = new();

    /// <summary>Snake-case JSON, as in a build's build_info.json; a missing field keeps its default.</summary>
    public static JsonSerializerOptions Json { get; } = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>
    /// Options from JSON: either the options object itself or a build_info.json (its "options" member), so that a
    /// build can be repeated from its record.
    /// </summary>
    public static BootstrapModelOptions FromJson(string json)
    {
        using var document = JsonDocument.Parse(json);
        var root = document.RootElement.TryGetProperty("options", out var nested) ? nested : document.RootElement;
        return root.Deserialize<BootstrapModelOptions>(Json) ?? throw new JsonException("The options JSON is null.");
    }

    /// <summary>A few hundred thousand parameters and a few dozen steps: a real, if weak, aligned base for tests.</summary>
    public static BootstrapModelOptions TestSize { get; } = new()
    {
        Name = "safetune-test",
        VocabularySize = 512,
        HiddenSize = 64,
        Layers = 2,
        AttentionHeads = 4,
        KeyValueHeads = 2,
        IntermediateSize = 128,
        MaxSequenceLength = 128,
        BatchSize = 8,
        Epochs = 1,
        MaxSteps = 40,
        Corpus = new BootstrapCorpusOptions { Sst2TrainExamples = 200, AgNewsTrainExamples = 100, Gsm8kTrainExamples = 20, SafetyTunedRefusals = 100, Passes = 1 },
        SentimentPhase = new BootstrapPhaseOptions { MaxSteps = 10 },
    };
}

/// <summary>
/// Budget of the sentiment phase: smaller batches than the first phase (more optimizer steps for the same tokens) at a
/// fine-tuning learning rate, with its own warmup and cosine decay.
/// </summary>
public sealed record BootstrapPhaseOptions
{
    public int BatchSize { get; init; } = 8;
    /// <summary>1e-3 lifts SST-2 from 55% to 61% over 5e-4 on the same first phase, at the same over-refusal.</summary>
    public double LearningRate { get; init; } = 1e-3;
    /// <summary>Caps the steps; null runs one epoch over the mix.</summary>
    public int? MaxSteps { get; init; }
}
