using System.Text.Json;
using System.Text.Json.Serialization;
using FineTuneService.Ml.SafeTensors;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Training;

/// <summary>
/// Checkpoint directory of <see cref="SftTrainer"/>; everything needed to continue a run exactly.
/// <list type="bullet">
/// <item><c>trainer_state.json</c>: <see cref="TrainerState"/> (step, epoch, data cursor, schedule, seed, data and
/// base-model fingerprints, torch CPU generator state, loss history).</item>
/// <item><c>trainable.safetensors</c>: the trainable parameters only, under their model names (Hugging Face keys;
/// for LoRA the <c>lora_A</c>/<c>lora_B</c> factors), fp32 master copies under bf16. Frozen weights are the base model
/// named by <see cref="TrainerState.BaseModel"/>.</item>
/// <item><c>optimizer.bin</c>: AdamW state (per-parameter step, first and second moments, options) from
/// <c>OptimizerHelper.save_state_dict</c>.</item>
/// </list>
/// The directory is written under a temporary name and renamed, so a directory that exists is complete.
/// </summary>
public static class TrainingCheckpoint
{
    public const string StateFile = "trainer_state.json";
    public const string TrainableFile = "trainable.safetensors";
    public const string OptimizerFile = "optimizer.bin";
    public const string Format = "fts-sft-checkpoint/1";

    internal static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter() },
    };

    /// <summary>Reads only the state file, e.g. to show step and losses of a stored checkpoint.</summary>
    public static TrainerState ReadState(string directory)
    {
        var path = Path.Combine(directory, StateFile);
        if (!File.Exists(path)) throw new FileNotFoundException($"Not a training checkpoint: {path} is missing.", path);
        var state = JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(path), Json)
            ?? throw new InvalidDataException($"{path} is empty.");
        if (state.Format != Format) throw new InvalidDataException($"{path} has format '{state.Format}', expected '{Format}'.");
        return state;
    }

    internal static void Write(string directory, TrainerState state, IReadOnlyList<(string Name, Parameter Parameter)> trainable, OptimizerHelper optimizer)
    {
        var parent = Path.GetDirectoryName(Path.GetFullPath(directory))!;
        Directory.CreateDirectory(parent);
        var temporary = Path.Combine(parent, $".{Path.GetFileName(directory)}.{Guid.NewGuid():N}.tmp");
        Directory.CreateDirectory(temporary);
        try
        {
            using (var scope = NewDisposeScope())
            {
                SafeTensorsWriter.Save(Path.Combine(temporary, TrainableFile),
                    trainable.Select(p => KeyValuePair.Create(p.Name, p.Parameter.detach())));
            }
            using (var writer = new BinaryWriter(File.Create(Path.Combine(temporary, OptimizerFile))))
                optimizer.save_state_dict(writer);
            File.WriteAllText(Path.Combine(temporary, StateFile), JsonSerializer.Serialize(state, Json));

            if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
            Directory.Move(temporary, directory);
        }
        catch
        {
            if (Directory.Exists(temporary)) Directory.Delete(temporary, recursive: true);
            throw;
        }
    }

    /// <summary>Copies the stored trainable tensors into <paramref name="trainable"/> (same names, shapes).</summary>
    internal static void LoadTrainable(string directory, IReadOnlyList<(string Name, Parameter Parameter)> trainable)
    {
        var path = Path.Combine(directory, TrainableFile);
        using var file = SafeTensorsFile.Open(path);
        var missing = trainable.Select(p => p.Name).Except(file.Tensors.Keys).ToList();
        var extra = file.Tensors.Keys.Except(trainable.Select(p => p.Name)).ToList();
        if (missing.Count > 0 || extra.Count > 0)
            throw new InvalidDataException($"{path} does not match the model's trainable parameters " +
                $"(missing: [{string.Join(", ", missing)}], not trainable: [{string.Join(", ", extra)}]).");
        foreach (var (name, parameter) in trainable) file.CopyTo(name, parameter);
    }

    internal static void LoadOptimizer(string directory, OptimizerHelper optimizer)
    {
        using var reader = new BinaryReader(File.OpenRead(Path.Combine(directory, OptimizerFile)));
        optimizer.load_state_dict(reader);
    }
}

/// <summary>Contents of <c>trainer_state.json</c>.</summary>
public sealed record TrainerState
{
    public string Format { get; init; } = TrainingCheckpoint.Format;

    /// <summary>Optimizer steps done; the run continues with step <c>Step + 1</c>.</summary>
    public required int Step { get; init; }
    public required int TotalSteps { get; init; }

    /// <summary>1-based epoch of the next step.</summary>
    public required int Epoch { get; init; }
    public required int StepsPerEpoch { get; init; }

    /// <summary>Index of the next micro-batch within the epoch's seeded row order.</summary>
    public required int MicroBatchCursor { get; init; }

    public required long Seed { get; init; }

    /// <summary>SHA-256 over the training rows and the options that shape batches; must match on resume.</summary>
    public required string DataFingerprint { get; init; }
    public required string BaseModel { get; init; }
    public required TrainingPrecision Precision { get; init; }
    public required double PeakLearningRate { get; init; }
    public required int WarmupSteps { get; init; }
    public required double MinLearningRateRatio { get; init; }
    public required long TokensSeen { get; init; }

    /// <summary>torch CPU generator state (dropout on CPU), base64.</summary>
    public required string TorchCpuRngState { get; init; }
    public required IReadOnlyList<double> TrainLosses { get; init; }
    /// <summary>Token accuracy of every step so far; empty in checkpoints written before it was recorded.</summary>
    public IReadOnlyList<double> TrainTokenAccuracies { get; init; } = [];
    public double? LastValidationLoss { get; init; }
    public double? LastValidationTokenAccuracy { get; init; }
    /// <summary>Every validation so far.</summary>
    public IReadOnlyList<ValidationPoint> Validations { get; init; } = [];
    public required IReadOnlyList<string> TrainableParameters { get; init; }

    /// <summary>DPO: per-step reward margins and accuracies, and each row's reference log-probability (so a resume needs no starting weights).</summary>
    public IReadOnlyList<double> RewardMargins { get; init; } = [];
    public IReadOnlyList<double> RewardAccuracies { get; init; } = [];
    public IReadOnlyList<float> ReferenceLogProbs { get; init; } = [];
    public IReadOnlyList<float> ValidationReferenceLogProbs { get; init; } = [];
    /// <summary>When the checkpoint was written (<see cref="SftTrainerOptions.Clock"/>).</summary>
    public DateTimeOffset CreatedAt { get; init; }
}

/// <summary>A validation measured after <paramref name="Step"/>.</summary>
public sealed record ValidationPoint(int Step, double Loss, double TokenAccuracy)
{
    /// <summary>DPO: held-back reward accuracy.</summary>
    public double? RewardAccuracy { get; init; }
}
