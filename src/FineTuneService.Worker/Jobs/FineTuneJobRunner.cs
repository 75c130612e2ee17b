using FineTuneService.Contracts.Jobs;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Safety;
using FineTuneService.Core.Jobs;
using FineTuneService.Datasets;
using FineTuneService.Ml.Training;
using FineTuneService.Worker.Hosting;
using FineTuneService.Worker.Models;
using FineTuneService.Worker.Results;
using FineTuneService.Worker.Safety;
using FineTuneService.Worker.Telemetry;
using FineTuneService.Worker.Training;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FineTuneService.Worker.Jobs;

/// <summary>
/// Runs one fine-tuning job on the device of the Hangfire server that dequeued it: claim, prepare data and model,
/// train synchronously (resuming from the last checkpoint when there is one), then record the outcome. Every
/// delivery is safe to repeat: a terminal, paused or live-held job is left alone (see <see cref="JobClaims"/>).
/// </summary>
public sealed class FineTuneJobRunner(
    CurrentWorkerSlot slot,
    JobClaims claims,
    JobLeases leases,
    IDbContextFactory<FineTuneDbContext> contexts,
    ArtifactTransfer transfer,
    BaseModelCache models,
    TrainingEngine engine,
    JobSafetyPipeline safety,
    IOptions<WorkerOptions> options,
    WorkerMetrics metrics,
    ILogger<FineTuneJobRunner> logger) : IFineTuneJobRunner
{
    /// <param name="jobId">The fine-tuning job (ftjob-…).</param>
    /// <param name="cancellationToken">Hangfire's shutdown token: the job checkpoints, is released and re-queued.</param>
    public async Task RunAsync(string jobId, CancellationToken cancellationToken)
    {
        var job = await claims.TryClaimAsync(jobId, slot.Slot.WorkerId, slot.Slot.DeviceKind, cancellationToken);
        if (job is null) return;

        logger.LogInformation("Job {JobId} claimed by {WorkerId} (attempt {Attempt})", job.Id, slot.Slot.WorkerId, job.Attempts);
        var scratch = Path.Combine(options.Value.ModelCacheDirectory, "jobs", $"{job.Id}-{Guid.NewGuid():N}");
        await using var lease = leases.Start(job.Id, slot.Slot.WorkerId);
        try
        {
            await RunClaimedAsync(job, lease, scratch, cancellationToken);
        }
        catch (Exception) when (lease.Lost.IsCancellationRequested)
        {
            logger.LogWarning("Job {JobId}: another worker took over; this run ends without writing", job.Id);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Hangfire re-queues a job that stops on its shutdown token; hand the job back so that delivery can claim it.
            await ReleaseAsync(lease, paused: false, "The worker is shutting down; the job will resume from its last checkpoint");
            throw;
        }
        catch (Exception e)
        {
            var error = e is JobFailureException failure
                ? failure.ToError()
                : JobFailureException.Error("training_error", $"Fine-tuning failed: {e.Message}", null);
            logger.LogError(e, "Job {JobId} failed", job.Id);
            lease.Post($"The job failed: {error["message"]}", EventLevel.Error);
            await lease.EndAsync(JobStateMachine.Fail(lease.WorkerId, error, lease.Now), null, CancellationToken.None);
        }
        finally
        {
            if (Directory.Exists(scratch)) Directory.Delete(scratch, recursive: true);
        }
    }

    private async Task RunClaimedAsync(FineTuningJob job, JobLease lease, string scratch, CancellationToken cancellationToken)
    {
        var latest = await LatestCheckpointAsync(job.Id, cancellationToken);
        lease.Post(latest is null
            ? $"Fine-tuning job started on {slot.Slot.Device}"
            : $"Fine-tuning job resumed on {slot.Slot.Device} from checkpoint at step {latest.StepNumber} (attempt {job.Attempts})");
        lease.Post("Validating training file");
        await lease.FlushAsync(cancellationToken);

        PreferenceTraining? preference = null;
        IReadOnlyList<ChatExample> training, validation;
        if (job.Method.IsPreference)
        {
            var pairs = await ReadPairsAsync(job.TenantId, job.TrainingFileId, "training_file", cancellationToken);
            var heldBack = job.ValidationFileId is null ? [] : await ReadPairsAsync(job.TenantId, job.ValidationFileId, "validation_file", cancellationToken);
            preference = new PreferenceTraining(pairs, heldBack, job.Method.Dpo!.ResolvedBeta);
            training = [.. pairs.Select(p => p.Chosen)];
            validation = [.. heldBack.Select(p => p.Chosen)];
        }
        else
        {
            training = await ReadDatasetAsync(job.TenantId, job.TrainingFileId, "training_file", cancellationToken);
            validation = job.ValidationFileId is null
                ? []
                : await ReadDatasetAsync(job.TenantId, job.ValidationFileId, "validation_file", cancellationToken);
        }
        var model = await models.ResolveAsync(job.Model, job.TenantId, cancellationToken);
        // Continued training tokenizes with the root base model's tokenizer and chat template, whatever the parent's folder carries.
        var rootFolder = model.HasDistinctRoot ? await models.GetFolderAsync(model.Root!.Sha256, cancellationToken) : model.Folder;
        var root = model.HasDistinctRoot ? new ResolvedModel(model.Root!.Id, model.Root.Sha256, rootFolder) : null;
        var safetyRun = await safety.StartAsync(job, model, validation, slot.Slot.Device, lease, cancellationToken, root);
        var hyperparameters = ResolvedHyperparameters.Resolve(job.Hyperparameters, training.Count);
        await lease.WriteAsync((_, row) => row.Hyperparameters = hyperparameters.AsRequested(), cancellationToken);

        string? resumeFrom = null;
        if (latest is not null)
        {
            resumeFrom = Path.Combine(scratch, "resume");
            await transfer.DownloadFolderAsync(latest.ResumeStateSha256!, resumeFrom, cancellationToken);
        }

        var names = new ModelNames(job);
        var baseModelReference = $"{model.Id}@{model.Sha256}";
        var request = new TrainingRequest(
            ModelFolder: model.Folder,
            BaseModelReference: baseModelReference,
            Device: slot.Slot.Device,
            Training: training,
            Validation: validation,
            Hyperparameters: hyperparameters,
            Safety: job.Safety,
            Seed: job.Seed,
            CheckpointDirectory: Path.Combine(scratch, "checkpoints"),
            ResumeFrom: resumeFrom,
            OutputFolder: Path.Combine(scratch, "output"),
            Lora: JobAdapter.From(job.Method.Adapter, baseModelReference),
            SafetyLayers: model.SafetyLayers,
            TokenizerFolder: rootFolder,
            Preference: preference);

        // Training runs synchronously on this thread. The observer reads the control flag between steps and turns it
        // into the trainer's cancel/pause tokens; host shutdown pauses too, so a checkpoint is saved before re-queueing.
        using var observer = new JobObserver(lease, new CheckpointRecorder(lease, transfer, names, logger), options.Value,
            logger, cancellationToken);
        using var metered = metrics.Observe(slot.Slot.Device, observer);
        var result = engine.Run(request, metered, observer.Cancel, observer.Pause, safetyRun is null ? null : safetyRun.EvaluateStage);
        await FinishAsync(job, lease, names, request, result, safetyRun, cancellationToken);
    }

    private async Task FinishAsync(FineTuningJob job, JobLease lease, ModelNames names, TrainingRequest request,
        TrainingResult result, JobSafetyRun? safetyRun, CancellationToken cancellationToken)
    {
        switch (result.Outcome)
        {
            case TrainingOutcome.Completed:
                lease.Post("Saving the fine-tuned model");
                await lease.FlushAsync(cancellationToken);
                // The weights are kept whatever the gate decides: a held model can be approved, a failed one inspected.
                var resultSha = await transfer.UploadFolderAsync(request.OutputFolder, cancellationToken);
                var adapterFolder = Path.Combine(request.OutputFolder, JobAdapter.AdapterFolder);
                var adapterSha = Directory.Exists(adapterFolder) ? await transfer.UploadFolderAsync(adapterFolder, cancellationToken) : null;
                var metricsCsv = MetricsCsv.Write(result.Metrics, StageScores.Of(safetyRun, result.StepsDone));
                var metricsSha = await transfer.UploadAsync(metricsCsv, "text/csv", cancellationToken);
                var gate = safetyRun?.Decide();
                if (gate is not null) PostGate(lease, gate);
                if (gate?.Outcome == SafetyGateOutcome.Failed)
                {
                    lease.Post($"The job failed: {gate.Message}", EventLevel.Error);
                    var error = JobFailureException.Error(gate.Reason!, gate.Message, null);
                    await lease.EndAsync(JobStateMachine.Fail(lease.WorkerId, error, lease.Now, resultSha, result.TokensSeen),
                        (db, row) =>
                        {
                            RecordResults(db, row, adapterSha, metricsSha, metricsCsv.Length, lease.Now);
                            safetyRun!.Record(db, row, resultSha, gate, lease.Now);
                        }, cancellationToken);
                    logger.LogWarning("Job {JobId} stopped by the safety gate: {Message}", job.Id, gate.Message);
                    break;
                }

                var held = gate?.Outcome == SafetyGateOutcome.Held;
                lease.Post(held
                    ? $"New fine-tuned model created: {names.FineTunedModel} (held for safety review; not listed until an admin approves it)"
                    : $"New fine-tuned model created: {names.FineTunedModel}");
                lease.Post("The job has successfully completed");
                await lease.EndAsync(
                    JobStateMachine.Succeed(lease.WorkerId, names.FineTunedModel, resultSha, result.TokensSeen, held, lease.Now),
                    (db, row) =>
                    {
                        RecordResults(db, row, adapterSha, metricsSha, metricsCsv.Length, lease.Now);
                        if (gate is not null) safetyRun!.Record(db, row, resultSha, gate, lease.Now);
                    }, cancellationToken);
                logger.LogInformation("Job {JobId} succeeded: {Model}, {Tokens} tokens", job.Id, names.FineTunedModel, result.TokensSeen);
                break;

            case TrainingOutcome.Paused when cancellationToken.IsCancellationRequested:
                throw new OperationCanceledException(cancellationToken); // released by RunAsync, re-queued by Hangfire

            case TrainingOutcome.Paused:
                await ReleaseAsync(lease, paused: true, $"The job was paused at step {result.StepsDone}");
                break;

            case TrainingOutcome.Cancelled:
                lease.Post($"The job was cancelled at step {result.StepsDone}");
                await lease.EndAsync(JobStateMachine.CancelRunning(lease.WorkerId, lease.Now), null, cancellationToken);
                break;
        }
    }

    private static void PostGate(JobLease lease, SafetyGateDecision gate) => lease.Post(gate.Outcome switch
    {
        SafetyGateOutcome.Passed => $"Safety gate passed: {gate.Message}",
        SafetyGateOutcome.Held => $"Safety gate: {gate.Message}",
        _ => $"Safety gate failed the job: {gate.Message}",
    }, gate.Outcome == SafetyGateOutcome.Passed ? EventLevel.Info : EventLevel.Warn);

    /// <summary>Hands the job back: paused jobs wait for resume, others for the next delivery.</summary>
    private static async Task ReleaseAsync(JobLease lease, bool paused, string message)
    {
        lease.Post(message);
        await lease.EndAsync(paused ? JobStateMachine.ReleasePaused(lease.WorkerId) : JobStateMachine.Release(lease.WorkerId),
            null, CancellationToken.None);
    }

    /// <summary>
    /// The LoRA adapter bundle and the metrics CSV as the job's result file (OpenAI's <c>result_files</c>, listed in the
    /// tenant's files); written with the job's final transition.
    /// </summary>
    private static void RecordResults(FineTuneDbContext db, FineTuningJob row, string? adapterSha, string metricsSha, long metricsBytes, DateTime now)
    {
        row.AdapterArtifactSha256 = adapterSha;
        var file = MetricsCsv.FileRow(row.TenantId, metricsSha, metricsBytes, now);
        db.Files.Add(file);
        row.ResultFiles = [file.Id];
    }

    private async Task<JobCheckpoint?> LatestCheckpointAsync(string jobId, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        return await db.JobCheckpoints.AsNoTracking().Where(c => c.JobId == jobId && c.ResumeStateSha256 != null)
            .OrderByDescending(c => c.StepNumber).FirstOrDefaultAsync(cancellationToken);
    }

    /// <summary>Reads a tenant's uploaded JSONL file; a missing or invalid file fails the job with a line-numbered error.</summary>
    private Task<IReadOnlyList<ChatExample>> ReadDatasetAsync(string tenantId, string fileId, string param, CancellationToken cancellationToken) =>
        ReadFileAsync<ChatExample>(tenantId, fileId, param, sha => transfer.ReadChatExamplesAsync(sha, cancellationToken), cancellationToken);

    private Task<IReadOnlyList<PreferenceExample>> ReadPairsAsync(string tenantId, string fileId, string param, CancellationToken cancellationToken) =>
        ReadFileAsync<PreferenceExample>(tenantId, fileId, param, sha => transfer.ReadPreferenceExamplesAsync(sha, cancellationToken), cancellationToken);

    private async Task<IReadOnlyList<T>> ReadFileAsync<T>(string tenantId, string fileId, string param,
        Func<string, Task<List<T>>> read, CancellationToken cancellationToken)
    {
        StoredFile? file;
        await using (var db = await contexts.CreateDbContextAsync(cancellationToken))
            file = await db.Files.AsNoTracking()
                .SingleOrDefaultAsync(f => f.Id == fileId && f.TenantId == tenantId && f.DeletedAt == null, cancellationToken);
        var code = param == "training_file" ? "invalid_training_file" : "invalid_validation_file";
        if (file is null) throw new JobFailureException(code, $"File {fileId} does not exist.", param);
        if (file.Status == FileStatus.Error)
            throw new JobFailureException(code, $"File {fileId} is invalid: {file.StatusDetails}", param);

        try
        {
            var examples = await read(file.Sha256);
            if (examples.Count == 0) throw new JobFailureException(code, $"File {fileId} has no examples.", param);
            return examples;
        }
        catch (InvalidDataException e)
        {
            throw new JobFailureException(code, $"File {fileId}: {e.Message}", param, e);
        }
    }
}
