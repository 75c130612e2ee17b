using FineTuneService.Datasets.Sft;

namespace FineTuneService.Ml.Training;

/// <summary>Numeric precision of the training step.</summary>
public enum TrainingPrecision
{
    /// <summary>BFloat16 on CUDA, Float32 elsewhere.</summary>
    Auto,
    Float32,
    /// <summary>Model computes in bf16; the optimizer updates fp32 master copies of the trainable weights.</summary>
    BFloat16,
}

/// <summary>Hyper-parameters and bookkeeping of one supervised fine-tuning run.</summary>
public sealed record SftTrainerOptions
{
    /// <summary>How a run on <paramref name="rowCount"/> training rows walks them.</summary>
    public TrainingSchedule Schedule(int rowCount) => new(rowCount, BatchSize, GradientAccumulationSteps, Epochs, MaxSteps);

    public int Epochs { get; init; } = 3;

    /// <summary>Caps the number of optimizer steps (the LR schedule then spans this many steps).</summary>
    public int? MaxSteps { get; init; }

    /// <summary>Rows per micro-batch (forward/backward pass).</summary>
    public int BatchSize { get; init; } = 8;

    /// <summary>Micro-batches per optimizer step.</summary>
    public int GradientAccumulationSteps { get; init; } = 1;

    /// <summary>Examples (or packed rows) are cut to this many tokens.</summary>
    public int MaxSequenceLength { get; init; } = 512;

    /// <summary>Concatenate examples into rows of <see cref="MaxSequenceLength"/> instead of padding each one.</summary>
    public bool Packing { get; init; }

    /// <summary>How the loss averages over tokens; <see cref="LossAveraging.PerToken"/> by default.</summary>
    public LossAveraging LossAveraging { get; init; } = LossAveraging.PerToken;

    /// <summary>Input id used for padding; padded positions never count towards the loss.</summary>
    public int PadTokenId { get; init; }

    /// <summary>Peak learning rate, reached at the end of warmup.</summary>
    public double LearningRate { get; init; } = 1e-4;

    /// <summary>Warmup length as a fraction of the total steps; <see cref="WarmupSteps"/> wins when set.</summary>
    public double WarmupRatio { get; init; } = 0.03;

    public int? WarmupSteps { get; init; }

    /// <summary>Cosine decay ends at <c>LearningRate * MinLearningRateRatio</c>.</summary>
    public double MinLearningRateRatio { get; init; } = 0.1;

    /// <summary>Decoupled weight decay, applied to matrices only (not to biases or norm weights).</summary>
    public double WeightDecay { get; init; }

    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.999;
    public double Epsilon { get; init; } = 1e-8;

    /// <summary>Global L2 norm the gradients are clipped to; 0 or less disables clipping.</summary>
    public double MaxGradNorm { get; init; } = 1.0;

    /// <summary>Seeds torch (weights init done before is the caller's business), dropout and the data order.</summary>
    public long Seed { get; init; } = 42;

    /// <summary>Validation loss every N optimizer steps (0: only after the last step).</summary>
    public int EvalEverySteps { get; init; }

    /// <summary>Write a checkpoint every N optimizer steps (0: never, except on pause).</summary>
    public int CheckpointEverySteps { get; init; }

    /// <summary>
    /// Also write a checkpoint after the last step of every epoch (and after the last step of the run), validated at
    /// that step: OpenAI's per-epoch checkpoints. Needs <see cref="CheckpointDirectory"/>.
    /// </summary>
    public bool CheckpointEveryEpoch { get; init; }

    /// <summary>Checkpoints go to <c>{CheckpointDirectory}/step-{step:D6}</c>. Required for checkpointing or pausing.</summary>
    public string? CheckpointDirectory { get; init; }

    public TrainingPrecision Precision { get; init; } = TrainingPrecision.Auto;

    /// <summary>Identifies the frozen base weights (model name plus hash); stored in checkpoints and checked on resume.</summary>
    public string BaseModelReference { get; init; } = "";

    /// <summary>Report progress every N optimizer steps.</summary>
    public int ProgressEverySteps { get; init; } = 1;

    /// <summary>The clock that dates checkpoints (<see cref="TrainerState.CreatedAt"/>); the host's, where there is one.</summary>
    public TimeProvider Clock { get; init; } = TimeProvider.System;

    internal void Validate()
    {
        Require(Epochs >= 1, "Epochs must be at least 1.");
        Require(MaxSteps is null or >= 1, "MaxSteps must be at least 1 when set.");
        Require(BatchSize >= 1, "BatchSize must be at least 1.");
        Require(GradientAccumulationSteps >= 1, "GradientAccumulationSteps must be at least 1.");
        Require(MaxSequenceLength >= 2, "MaxSequenceLength must be at least 2.");
        Require(LearningRate > 0, "LearningRate must be positive.");
        Require(WarmupRatio is >= 0 and < 1, "WarmupRatio must be in [0, 1).");
        Require(WarmupSteps is null or >= 0, "WarmupSteps must not be negative.");
        Require(MinLearningRateRatio is >= 0 and <= 1, "MinLearningRateRatio must be in [0, 1].");
        Require(EvalEverySteps >= 0 && CheckpointEverySteps >= 0, "EvalEverySteps and CheckpointEverySteps must not be negative.");
        Require(ProgressEverySteps >= 1, "ProgressEverySteps must be at least 1.");
        Require((CheckpointEverySteps == 0 && !CheckpointEveryEpoch) || !string.IsNullOrWhiteSpace(CheckpointDirectory),
            "CheckpointDirectory is required when CheckpointEverySteps or CheckpointEveryEpoch is set.");
    }

    private static void Require(bool condition, string message)
    {
        if (!condition) throw new ArgumentException(message);
    }
}
