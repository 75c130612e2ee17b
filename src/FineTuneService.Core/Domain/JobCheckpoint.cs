using System.Text.Json.Nodes;

namespace FineTuneService.Core.Domain;

/// <summary>
/// A saved training state. Two kinds share the table: resume states every N steps (and on pause), which only the
/// worker reads, and epoch checkpoints, which also carry usable model weights: those are OpenAI's
/// "fine_tuning.job.checkpoint" objects and the models <c>{fine_tuned_model}:ckpt-step-N</c>.
/// </summary>
public sealed class JobCheckpoint
{
    public required string Id { get; init; }
    public required string JobId { get; init; }
    public int StepNumber { get; init; }
    public required string FineTunedModelCheckpoint { get; init; }
    /// <summary>step, train_loss, train_mean_token_accuracy, valid_loss, valid_mean_token_accuracy, … as OpenAI's checkpoint metrics.</summary>
    public required JsonObject Metrics { get; init; }
    /// <summary>
    /// Trainer state bundle (trainable weights, optimizer, step and RNG state), enough to resume exactly; released
    /// (null) once the job has finished and nothing will resume from it.
    /// </summary>
    public string? ResumeStateSha256 { get; set; }
    /// <summary>Hugging Face folder bundle of the model at this step; set for epoch checkpoints, which makes them models.</summary>
    public string? WeightsArtifactSha256 { get; init; }
    /// <summary>PEFT adapter folder bundle at this step, for epoch checkpoints of a LoRA job.</summary>
    public string? AdapterArtifactSha256 { get; init; }
    public DateTime CreatedAt { get; init; }

    /// <summary>An epoch checkpoint: listed, usable as a model, kept (the last three) after the job ends.</summary>
    public bool IsModel => WeightsArtifactSha256 is not null;
}
