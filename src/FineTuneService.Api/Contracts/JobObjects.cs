using System.Text.Json.Nodes;
using FineTuneService.Api.Safety;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Jobs;

namespace FineTuneService.Api.Contracts;

/// <summary>Body of <c>POST /v1/fine_tuning/jobs</c>. Hyperparameter values are numbers or "auto".</summary>
public sealed record CreateFineTuningJobRequest
{
    /// <summary>Base model id (see GET /v1/models), or one of the tenant's fine-tuned models or epoch checkpoints (<c>…:ckpt-step-N</c>) to continue training.</summary>
    public string? Model { get; init; }
    /// <summary>Id of a file uploaded with purpose fine-tune.</summary>
    public string? TrainingFile { get; init; }
    public string? ValidationFile { get; init; }
    /// <summary>Legacy form: {n_epochs, batch_size, learning_rate_multiplier}.</summary>
    public JsonObject? Hyperparameters { get; init; }
    /// <summary>{type: "supervised", supervised: {hyperparameters: {...}, adapter?: {type: "lora", rank, alpha, dropout, target_modules}}}; no adapter = full fine-tune.</summary>
    public JsonObject? Method { get; init; }
    /// <summary>Up to 64 characters added to the fine-tuned model name.</summary>
    public string? Suffix { get; init; }
    public long? Seed { get; init; }
    /// <summary>Up to 16 string key-value pairs.</summary>
    public JsonObject? Metadata { get; init; }
    /// <summary>Extension: {strategy: a name or a list of names, params: {&lt;strategy&gt;: {...}}}; the schema lists every registered strategy.</summary>
    public JsonObject? Safety { get; init; }
    /// <summary>Accepted for compatibility; integrations are not supported and must be empty.</summary>
    public JsonArray? Integrations { get; init; }
}

/// <summary>OpenAI "fine_tuning.job" object plus the <c>safety</c> extension.</summary>
public sealed record FineTuningJobObject(
    string Id, long CreatedAt, JsonObject? Error, string? FineTunedModel, long? FinishedAt, JsonObject Hyperparameters,
    string Model, string OrganizationId, IReadOnlyList<string> ResultFiles, string Status, long? TrainedTokens,
    string TrainingFile, string? ValidationFile, IReadOnlyList<JsonObject> Integrations, long Seed, long? EstimatedFinish,
    JsonObject Method, JsonObject? Metadata, string? UserProvidedSuffix, JsonObject Safety, JobLineageObject Lineage,
    int? QueuePosition, long? EstimatedStart)
{
    public string Object => "fine_tuning.job";

    internal static FineTuningJobObject From(FineTuningJob job) => From(job, null);

    /// <param name="job">The job row.</param>
    /// <param name="standing">A queued job's place in the queue (<c>queue_position</c>, <c>estimated_start</c>, and the
    /// <c>estimated_finish</c> that follows from them); null otherwise.</param>
    internal static FineTuningJobObject From(FineTuningJob job, QueueStanding? standing) => new(
        job.Id, UnixTime.Seconds(job.CreatedAt), job.Error?.DeepClone().AsObject(), job.FineTunedModel,
        UnixTime.Seconds(job.FinishedAt), job.Hyperparameters.ToJson(), job.Model, job.TenantId,
        [.. job.ResultFiles], JobStatusNames.Of(job.Status), job.TrainedTokens, job.TrainingFileId, job.ValidationFileId, [], job.Seed,
        UnixTime.Seconds(standing?.EstimatedFinish ?? job.EstimatedFinish), job.Method.WithHyperparameters(job.Hyperparameters).ToJson(),
        job.Metadata?.DeepClone().AsObject(), job.Suffix, SafetyOf(job), JobLineageObject.Of(job), standing?.Position, UnixTime.Seconds(standing?.EstimatedStart));

    /// <summary>The safety plan ({strategy, params}) with the scores, the gate's verdict and the review state.</summary>
    private static JsonObject SafetyOf(FineTuningJob job)
    {
        var safety = job.Safety.ToJson();
        safety["scores"] = job.SafetyScores?.DeepClone();
        // The gate's verdict ({decision: passed|failed|held, reason, message, judge, scores, violations, policy}), also inside scores.
        safety["gate"] = job.SafetyScores?["gate"]?.DeepClone();
        safety["review"] = ReviewNames.Of(job.Review);
        return safety;
    }
}

/// <summary>
/// Extension <c>lineage</c> of a job: the model it trains from (<c>model</c>, its parent) and the root base model at
/// the start of that chain of jobs, whose tokenizer, chat template and safety scores the job uses.
/// </summary>
/// <param name="ParentModel">The job's <c>model</c>.</param>
/// <param name="ParentKind">"base", "fine_tuned" or "checkpoint".</param>
/// <param name="ParentJob">The job that produced the parent model; null for a base model.</param>
/// <param name="RootModel">The root base model.</param>
/// <param name="Depth">Fine-tuning jobs between the root and this job's starting weights (0: trained from a base model).</param>
public sealed record JobLineageObject(string ParentModel, string ParentKind, string? ParentJob, string RootModel, int Depth)
{
    internal static JobLineageObject Of(FineTuningJob job) => new(
        job.Model,
        !job.Model.StartsWith("ft:", StringComparison.Ordinal) ? "base"
            : job.Model.Contains(":ckpt-step-", StringComparison.Ordinal) ? "checkpoint" : "fine_tuned",
        job.ParentJobId,
        job.RootModel ?? Core.Models.ModelAccess.RootOfName(job.Model),
        job.LineageDepth);
}

internal static class JobStatusNames
{
    public static string Of(JobStatus status) => status switch
    {
        JobStatus.ValidatingFiles => "validating_files",
        JobStatus.Queued => "queued",
        JobStatus.Paused => "paused", // as OpenAI's pause endpoint answers; the SDKs read status as an open string
        JobStatus.Running => "running",
        JobStatus.Succeeded => "succeeded",
        JobStatus.Failed => "failed",
        JobStatus.Cancelled => "cancelled",
        _ => throw new ArgumentOutOfRangeException(nameof(status), status, null),
    };
}

/// <summary>OpenAI "fine_tuning.job.event" object.</summary>
public sealed record FineTuningJobEventObject(string Id, long CreatedAt, string Level, string Message, JsonObject? Data, string Type)
{
    public string Object => "fine_tuning.job.event";

    internal static FineTuningJobEventObject From(JobEvent e) => new(
        e.Id, UnixTime.Seconds(e.CreatedAt), e.Level.ToString().ToLowerInvariant(), e.Message, e.Data?.DeepClone().AsObject(), e.Type);
}

/// <summary>OpenAI "fine_tuning.job.checkpoint" object.</summary>
public sealed record FineTuningJobCheckpointObject(
    string Id, long CreatedAt, string FineTunedModelCheckpoint, int StepNumber, JsonObject Metrics, string FineTuningJobId)
{
    public string Object => "fine_tuning.job.checkpoint";

    internal static FineTuningJobCheckpointObject From(JobCheckpoint c) => new(
        c.Id, UnixTime.Seconds(c.CreatedAt), c.FineTunedModelCheckpoint, c.StepNumber, c.Metrics.DeepClone().AsObject(), c.JobId);
}

/// <summary>
/// Extension: the answer of <c>POST /v1/fine_tuning/jobs/estimate</c>, what a job with this body would train and how
/// long it would take; nothing is created.
/// </summary>
/// <param name="Model">The requested model.</param>
/// <param name="RootModel">The root base model whose tokenizer, chat template and throughput the estimate uses.</param>
/// <param name="TrainedTokens">Tokens the job will train on (its <c>trained_tokens</c> once it succeeds).</param>
/// <param name="TrainingExamples">Examples in the training file.</param>
/// <param name="Steps">Optimizer steps of the run.</param>
/// <param name="StepsPerEpoch">Optimizer steps per epoch.</param>
/// <param name="Hyperparameters">The hyperparameters with "auto" resolved as the worker resolves them.</param>
/// <param name="EstimatedDurationSeconds">Run time from start to finish: training plus the safety evaluation stages.</param>
/// <param name="EstimateBasis"><c>measured</c>: the training time per token and the time per evaluation stage of the last finished jobs on the same root base model and device kind; <c>default</c>: none yet, so an assumed throughput and time per evaluation stage.</param>
/// <param name="MeasuredBaseModel">The root base model the measured jobs trained (<paramref name="RootModel"/>); null for <c>default</c>.</param>
/// <param name="MeasuredDeviceKind">The device kind (<c>cpu</c>, <c>cuda</c>) they trained on; null for <c>default</c>.</param>
/// <param name="MeasuredJobs">Finished jobs behind a measured estimate.</param>
/// <param name="PoolDeviceKinds">The device kinds of the live workers: the kinds whose measurements count (every recorded kind when this is empty).</param>
/// <param name="EvaluationStages">Safety evaluation stages counted (base model, trained model, each post-training step).</param>
/// <param name="QueuePosition">The place a job created now would take in the queue (1: next).</param>
/// <param name="EstimatedStart">Unix seconds: when a worker should pick a job created now.</param>
/// <param name="EstimatedFinish">Unix seconds: <paramref name="EstimatedStart"/> plus the estimated duration.</param>
public sealed record FineTuningJobEstimateObject(
    string Model, string RootModel, long TrainedTokens, int TrainingExamples, int Steps, int StepsPerEpoch, JsonObject Hyperparameters,
    double EstimatedDurationSeconds, EstimateBasis EstimateBasis, string? MeasuredBaseModel, string? MeasuredDeviceKind, int MeasuredJobs,
    IReadOnlyCollection<string> PoolDeviceKinds, int EvaluationStages,
    int QueuePosition, long EstimatedStart, long EstimatedFinish)
{
    public string Object => "fine_tuning.job.estimate";
}
