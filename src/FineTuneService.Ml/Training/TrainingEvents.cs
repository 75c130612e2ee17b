namespace FineTuneService.Ml.Training;

/// <summary>State after an optimizer step.</summary>
/// <param name="Step">Optimizer steps done (1-based).</param>
/// <param name="TotalSteps">Optimizer steps of the whole run.</param>
/// <param name="Epoch">1-based epoch the step belongs to.</param>
/// <param name="TrainLoss">Mean cross-entropy per loss-bearing token of this step.</param>
/// <param name="TrainTokenAccuracy">Share of this step's loss-bearing tokens whose argmax prediction was the label.</param>
/// <param name="LearningRate">Learning rate this step used.</param>
/// <param name="GradientNorm">Global L2 norm of the gradients before clipping.</param>
/// <param name="TokensPerSecond">Non-padding tokens per second of step time, over this call's steps so far.</param>
/// <param name="TokensSeen">Non-padding tokens trained on so far (including before a resume).</param>
/// <param name="Elapsed">Step time of this call so far (excludes evaluation and checkpoints).</param>
/// <param name="Remaining">Time left, extrapolated from the mean step time of this call (the caller's clock turns it into an ETA).</param>
public sealed record TrainingProgress(
    int Step,
    int TotalSteps,
    int Epoch,
    double TrainLoss,
    double TrainTokenAccuracy,
    double LearningRate,
    double GradientNorm,
    double TokensPerSecond,
    long TokensSeen,
    TimeSpan Elapsed,
    TimeSpan Remaining)
{
    /// <summary>DPO: mean reward margin (β-scaled chosen minus rejected log-ratio) of this step's pairs; null for SFT.</summary>
    public double? RewardMargin { get; init; }

    /// <summary>DPO: share of this step's pairs with a positive margin; null for SFT.</summary>
    public double? RewardAccuracy { get; init; }
}

/// <summary>
/// Validation after <paramref name="Step"/>: mean cross-entropy per loss-bearing token, and the share of those tokens
/// predicted right (argmax).
/// </summary>
/// For DPO the loss is the mean DPO loss of the held-back pairs and <see cref="RewardAccuracy"/> their share with a positive margin.
public sealed record EvaluationResult(int Step, double ValidationLoss, long ValidationTokens, double ValidationTokenAccuracy)
{
    public double? RewardAccuracy { get; init; }
}

/// <summary>A checkpoint directory written by the trainer; see <see cref="TrainingCheckpoint"/> for its format.</summary>
/// <param name="Step">Optimizer steps done.</param>
/// <param name="Directory">The complete checkpoint directory.</param>
/// <param name="TrainLoss">Loss of the last step.</param>
/// <param name="ValidationLoss">Last validation loss measured (at this step for an end-of-epoch checkpoint).</param>
/// <param name="TrainTokenAccuracy">Token accuracy of the last step.</param>
/// <param name="ValidationTokenAccuracy">Token accuracy of the last validation.</param>
/// <param name="EndOfEpoch">Written because an epoch ended (<see cref="SftTrainerOptions.CheckpointEveryEpoch"/>), not only to resume from.</param>
public sealed record CheckpointWritten(int Step, string Directory, double TrainLoss, double? ValidationLoss,
    double TrainTokenAccuracy = double.NaN, double? ValidationTokenAccuracy = null, bool EndOfEpoch = false)
{
    /// <summary>A Hugging Face folder of the model at this step, when the observer chain wrote one (end of epoch).</summary>
    public string? WeightsDirectory { get; init; }

    /// <summary>The PEFT adapter folder at this step, for a LoRA run's end-of-epoch checkpoint.</summary>
    public string? AdapterDirectory { get; init; }

    /// <summary>DPO figures of the last step and the last validation; null for SFT.</summary>
    public double? RewardMargin { get; init; }
    public double? RewardAccuracy { get; init; }
    public double? ValidationRewardAccuracy { get; init; }
}

/// <summary>One step of a run's metrics: training loss and token accuracy, and the validation figures where measured.</summary>
public sealed record StepMetrics(int Step, double TrainLoss, double TrainTokenAccuracy, double? ValidationLoss, double? ValidationTokenAccuracy)
{
    /// <summary>DPO figures (null for SFT): the step's reward margin and accuracy, the held-back reward accuracy where validated.</summary>
    public double? RewardMargin { get; init; }
    public double? RewardAccuracy { get; init; }
    public double? ValidationRewardAccuracy { get; init; }
}

/// <summary>Receives what the trainer reports; called synchronously on the training thread, so keep it quick.</summary>
public interface ITrainingObserver
{
    void OnProgress(TrainingProgress progress) { }
    void OnEvaluation(EvaluationResult evaluation) { }

    /// <summary>A complete checkpoint directory exists; persist it (upload, record) before returning if needed.</summary>
    void OnCheckpoint(CheckpointWritten checkpoint) { }

    /// <summary>
    /// The weights of a completed run reached a stage worth inspecting (e.g. with a safety evaluation):
    /// <see cref="TrainingStages.Training"/> after the last step, then each post-training step that changed them
    /// (<see cref="ITrainingStrategy.PostTrainingStep"/>), in order. The model must be left as it was found.
    /// </summary>
    void OnStage(string stage) { }
}

/// <summary>Stage names reported to <see cref="ITrainingObserver.OnStage"/> besides the post-training step names.</summary>
public static class TrainingStages
{
    /// <summary>The optimizer loop is done; no post-training step has run yet.</summary>
    public const string Training = "training";
}

public enum TrainingOutcome
{
    Completed,
    /// <summary>Stopped by the cancellation token; nothing was saved beyond the periodic checkpoints.</summary>
    Cancelled,
    /// <summary>Stopped by the pause token after writing a checkpoint to resume from.</summary>
    Paused,
}

/// <summary>How a <see cref="SftTrainer.Train"/> call ended.</summary>
/// <param name="Outcome">Completed, cancelled or paused.</param>
/// <param name="TotalSteps">Optimizer steps of the whole run.</param>
/// <param name="FinalValidationLoss">Last validation loss measured (null without validation data).</param>
/// <param name="TokensSeen">Non-padding tokens trained on (including before a resume).</param>
/// <param name="StepsDone">Optimizer steps done in total (including those before a resume).</param>
/// <param name="TrainLosses">Loss of every step done in this call, index 0 = the first step of this call.</param>
/// <param name="LastCheckpoint">The checkpoint directory written last in this call, if any.</param>
public sealed record TrainingResult(
    TrainingOutcome Outcome,
    int StepsDone,
    int TotalSteps,
    IReadOnlyList<double> TrainLosses,
    double? FinalValidationLoss,
    long TokensSeen,
    string? LastCheckpoint)
{
    /// <summary>Every step of the whole run (including those before a resume), in order: the job's metrics file.</summary>
    public IReadOnlyList<StepMetrics> Metrics { get; init; } = [];
}
