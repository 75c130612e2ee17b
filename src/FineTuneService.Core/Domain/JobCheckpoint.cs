using System.Text.Json.Nodes;

namespace FineTuneService.Core.Domain;

/// <summary>A saved training state (OpenAI "fine_tuning.job.checkpoint"); the bundle is in the artifact store.</summary>
public sealed class JobCheckpoint
{
    public required string Id { get; init; }
    public required string JobId { get; init; }
    public int StepNumber { get; init; }
    public required string FineTunedModelCheckpoint { get; init; }
    /// <summary>step, train_loss, valid_loss, … as OpenAI's checkpoint metrics.</summary>
    public required JsonObject Metrics { get; init; }
    /// <summary>Model, optimizer, step and RNG state, enough to resume exactly.</summary>
    public required string ArtifactSha256 { get; init; }
    public DateTime CreatedAt { get; init; }
}
