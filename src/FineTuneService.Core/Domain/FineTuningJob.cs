using System.Text.Json.Nodes;
using FineTuneService.Contracts.Jobs;
using FineTuneService.Contracts.Safety;

namespace FineTuneService.Core.Domain;

/// <summary>
/// A job's state: the OpenAI status values, plus <see cref="Paused"/> (parked by a pause request, held by no worker,
/// waiting for resume). The legal changes are listed in <c>JobStateMachine</c>.
/// </summary>
public enum JobStatus { ValidatingFiles, Queued, Running, Paused, Succeeded, Failed, Cancelled }

/// <summary>What the worker should do when it next checks a running job between steps.</summary>
public enum JobControl { None, Pause, Cancel }

/// <summary>Admin review state of the job's model; a held model is not listed to its tenant.</summary>
public enum ReviewState { NotRequired, Held, Approved, Rejected }

public sealed class FineTuningJob : ICreatedRow
{
    public required string Id { get; init; }
    public required string TenantId { get; init; }
    /// <summary>
    /// The model the job trains from, as requested: a base model id (e.g. "safetune-tiny"), or one of the tenant's
    /// fine-tuned models or epoch checkpoints (continued training): the job's parent model.
    /// </summary>
    public required string Model { get; init; }
    /// <summary>The base model at the start of <see cref="Model"/>'s chain of jobs (itself for a base model); null only on jobs made outside the API.</summary>
    public string? RootModel { get; set; }
    /// <summary>The job that produced <see cref="Model"/> when it is a fine-tuned or checkpoint model; null for a base model.</summary>
    public string? ParentJobId { get; set; }
    /// <summary>Jobs between the root base model and this job's starting weights: 0 when training a base model.</summary>
    public int LineageDepth { get; set; }
    public required string TrainingFileId { get; init; }
    public string? ValidationFileId { get; init; }
    public JobStatus Status { get; set; } = JobStatus.ValidatingFiles;
    /// <summary>Set by cancel/pause requests, read by the worker between steps.</summary>
    public JobControl Control { get; set; } = JobControl.None;
    /// <summary>
    /// The hyperparameters: as requested ("auto" or a number each) until the worker resolves them when training
    /// starts, then the resolved values, which is what the job echoes.
    /// </summary>
    public Hyperparameters Hyperparameters { get; set; } = Hyperparameters.Auto;
    /// <summary>The method as validated at create time (its requested hyperparameters, the LoRA adapter).</summary>
    public JobMethod Method { get; init; } = JobMethod.Default;
    /// <summary>The validated safety request, stored as <c>{strategy: [...], params: {...}}</c>.</summary>
    public SafetyPlan Safety { get; set; } = SafetyPlan.None;
    public string? Suffix { get; init; }
    public long Seed { get; init; }
    public JsonObject? Metadata { get; init; }
    public string? FineTunedModel { get; set; }
    /// <summary>OpenAI error object {code, message, param}, null unless failed.</summary>
    public JsonObject? Error { get; set; }
    public long? TrainedTokens { get; set; }
    public DateTime CreatedAt { get; init; }
    public DateTime? StartedAt { get; set; }
    public DateTime? FinishedAt { get; set; }
    public DateTime? EstimatedFinish { get; set; }
    public string? IdempotencyKey { get; init; }
    /// <summary>Which worker (host/device) holds the job, and when it last reported; a stale heartbeat means the worker died.</summary>
    public string? WorkerId { get; set; }
    /// <summary>
    /// The kind of device (<c>cpu</c>, <c>cuda</c>) the job last trained on, set when a worker claims it and kept once
    /// it finishes: the estimate's measured throughput is per root base model and device kind. Null until claimed.
    /// </summary>
    public string? DeviceKind { get; set; }
    public DateTime? HeartbeatAt { get; set; }
    /// <summary>How many times a worker has started this job.</summary>
    public int Attempts { get; set; }
    public ReviewState Review { get; set; } = ReviewState.NotRequired;
    /// <summary>Artifact hash of the final weights (Hugging Face folder bundle).</summary>
    public string? ResultArtifactSha256 { get; set; }
    /// <summary>Artifact hash of the PEFT adapter folder bundle of a LoRA job (null for a full fine-tune).</summary>
    public string? AdapterArtifactSha256 { get; set; }
    /// <summary>When the tenant deleted the fine-tuned model: it is then gone for every use, and its weights collectable.</summary>
    public DateTime? ModelDeletedAt { get; set; }
    /// <summary>Ids of the job's result files (purpose <c>fine-tune-results</c>): the metrics CSV, as OpenAI's <c>result_files</c>.</summary>
    public List<string> ResultFiles { get; set; } = [];
    /// <summary>Scores and reports gathered by the safety evaluation, shown as job.safety.scores.</summary>
    public JsonObject? SafetyScores { get; set; }

    public bool IsTerminal => Status is JobStatus.Succeeded or JobStatus.Failed or JobStatus.Cancelled;
}
