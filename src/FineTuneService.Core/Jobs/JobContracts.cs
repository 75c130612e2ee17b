namespace FineTuneService.Core.Jobs;

/// <summary>Hangfire queue names. The gpu queue has one worker per device so a device runs one job at a time.</summary>
public static class Queues
{
    public const string Gpu = "gpu";
    public const string Default = "default";

    /// <summary>
    /// Training-data screening: served by the worker host (the harm classifier needs libtorch) with its own small
    /// server, so a file is screened while the devices train rather than after them.
    /// </summary>
    public const string Screening = "screening";
}

/// <summary>
/// Runs one fine-tuning job end to end on this worker's device. Implemented by the worker host (it needs libtorch);
/// the API enqueues it by this interface. Idempotent: Hangfire delivers at least once, so a second delivery resumes
/// from the last checkpoint or does nothing when the job is terminal.
/// </summary>
public interface IFineTuneJobRunner
{
    Task RunAsync(string jobId, CancellationToken cancellationToken);
}

/// <summary>Validates an uploaded file in the background and records the line-numbered report on it. Idempotent.</summary>
public interface IFileValidationJob
{
    Task RunAsync(string fileId, CancellationToken cancellationToken);
}

/// <summary>
/// Screens a structurally valid training file for harmful rows with the harm classifier, records the flagged line
/// numbers in the file's validation report, and decides processed or <c>unsafe_file</c>. Implemented by the worker host
/// (libtorch); idempotent: a file that is no longer "uploaded" is only re-promoted.
/// </summary>
public interface IFileScreeningJob
{
    Task RunAsync(string fileId, CancellationToken cancellationToken);
}

/// <summary>
/// Runs one stand-alone safety evaluation (<c>POST /v1/safety/evaluations</c>) on the device of the gpu-queue server
/// that dequeued it: loads the model, generates answers to the prompt set and judges them. Implemented by the worker
/// host; idempotent (a finished evaluation is left alone, an interrupted one runs again from the start).
/// </summary>
public interface ISafetyEvaluationJob
{
    Task RunAsync(string evaluationId, CancellationToken cancellationToken);
}

/// <summary>
/// Locates a base model's safety layers once (the cosine-gap curves and the over-rejection refinement of
/// <c>SafetyLayerLocator</c>) on the device of the gpu-queue server that dequeued it, stores them with the model and
/// releases the <c>frozen_layers</c> jobs that wait for them. Implemented by the worker host; idempotent (a model whose
/// layers are known, or whose weights changed meanwhile, is left alone).
/// </summary>
public interface ISafetyLayerLocationJob
{
    Task RunAsync(string baseModelId, CancellationToken cancellationToken);
}

/// <summary>
/// Runs one hardening run (<c>POST /v1/admin/models/{base}/harden</c>) on the device of the gpu-queue server that
/// dequeued it: hardens the base model's weights, registers the result as a new base model with its lineage and scores
/// it once. Implemented by the worker host; idempotent (a finished run is left alone, an interrupted one starts over,
/// and one whose model is already registered only finishes).
/// </summary>
public interface IHardeningJob
{
    Task RunAsync(string runId, CancellationToken cancellationToken);
}

/// <summary>
/// Scores a newly registered base model once (harmful score by every judge, refusals, over-refusal) and caches the
/// scores every job on it then reuses. Implemented by the worker host; idempotent (scores already cached for the
/// model's weights and the worker's evaluation settings are left alone).
/// </summary>
public interface IBaseModelScoringJob
{
    Task RunAsync(string baseModelId, CancellationToken cancellationToken);
}
