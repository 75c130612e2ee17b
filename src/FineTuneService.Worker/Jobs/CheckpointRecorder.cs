using System.Text.Json.Nodes;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Jobs;
using FineTuneService.Ml.Training;
using FineTuneService.Worker.Models;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace FineTuneService.Worker.Jobs;

/// <summary>
/// Persists a checkpoint the trainer wrote: the directory (and, at the end of an epoch, the model folder and adapter
/// written beside it) as artifacts, then the <see cref="JobCheckpoint"/> row and its event in one transaction. A row
/// exists only once its bundles are stored, so resume never points at nothing.
/// </summary>
internal sealed class CheckpointRecorder(JobLease lease, ArtifactTransfer transfer, ModelNames names, ILogger logger)
{
    /// <summary>
    /// Called on the training thread, which the trainer requires to wait until the checkpoint is safe; blocking on
    /// the upload here is deliberate (a pool thread without a synchronization context, outside any tensor scope).
    /// </summary>
    public void Record(CheckpointWritten checkpoint) => RecordAsync(checkpoint).GetAwaiter().GetResult();

    private async Task RecordAsync(CheckpointWritten checkpoint)
    {
        var sha256 = await transfer.UploadFolderAsync(checkpoint.Directory, lease.Lost);
        var weights = checkpoint.WeightsDirectory is { } folder ? await transfer.UploadFolderAsync(folder, lease.Lost) : null;
        var adapter = checkpoint.AdapterDirectory is { } adapterFolder ? await transfer.UploadFolderAsync(adapterFolder, lease.Lost) : null;
        await lease.WriteAsync((db, _) =>
        {
            // A replayed step (resume after a crash that followed this commit) must not insert the row twice.
            if (db.JobCheckpoints.Any(c => c.JobId == lease.JobId && c.StepNumber == checkpoint.Step)) return;
            db.JobCheckpoints.Add(new JobCheckpoint
            {
                Id = Ids.Checkpoint(),
                JobId = lease.JobId,
                StepNumber = checkpoint.Step,
                FineTunedModelCheckpoint = names.Checkpoint(checkpoint.Step),
                Metrics = Metrics(checkpoint),
                ResumeStateSha256 = sha256,
                WeightsArtifactSha256 = weights,
                AdapterArtifactSha256 = adapter,
                CreatedAt = lease.Now,
            });
            db.JobEvents.Add(JobEvents.Message(lease.JobId, $"Checkpoint created at step {checkpoint.Step}", at: lease.Now));
        }, lease.Lost);
        logger.LogInformation("Job {JobId}: checkpoint at step {Step} stored as {Sha256} (model weights {Weights})",
            lease.JobId, checkpoint.Step, sha256, weights ?? "none");

        // Stored; the local copies only cost disk from here on.
        Directory.Delete(checkpoint.Directory, recursive: true);
        if (checkpoint.WeightsDirectory is not null) Directory.Delete(checkpoint.WeightsDirectory, recursive: true);
    }

    /// <summary>
    /// OpenAI's checkpoint metrics. The validation covers the whole validation file, so its figures are also the
    /// <c>full_valid_*</c> ones; an end-of-epoch checkpoint is validated at its own step.
    /// </summary>
    private static JsonObject Metrics(CheckpointWritten checkpoint)
    {
        var metrics = OpenAiMetrics(checkpoint);
        if (checkpoint.RewardMargin is null) return metrics;
        metrics["reward_margin"] = Finite(checkpoint.RewardMargin.Value);
        metrics["reward_accuracy"] = checkpoint.RewardAccuracy is { } accuracy ? Finite(accuracy) : null;
        metrics["valid_reward_accuracy"] = checkpoint.ValidationRewardAccuracy;
        return metrics;
    }

    private static JsonObject OpenAiMetrics(CheckpointWritten checkpoint) => new()
    {
        ["step"] = checkpoint.Step,
        ["train_loss"] = Finite(checkpoint.TrainLoss),
        ["train_mean_token_accuracy"] = Finite(checkpoint.TrainTokenAccuracy),
        ["valid_loss"] = checkpoint.ValidationLoss,
        ["valid_mean_token_accuracy"] = checkpoint.ValidationTokenAccuracy,
        ["full_valid_loss"] = checkpoint.ValidationLoss,
        ["full_valid_mean_token_accuracy"] = checkpoint.ValidationTokenAccuracy,
    };

    private static double? Finite(double value) => double.IsFinite(value) ? value : null;
}
