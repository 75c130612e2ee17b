using System.Text.Json.Nodes;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Jobs;
using FineTuneService.Ml.Training;
using FineTuneService.Worker.Models;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace FineTuneService.Worker.Jobs;

/// <summary>
/// Persists a checkpoint the trainer wrote: the directory as an artifact, then the <see cref="JobCheckpoint"/> row and
/// its event in one transaction. A row exists only once its bundle is stored, so resume never points at nothing.
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
        var metrics = new JsonObject
        {
            ["step"] = checkpoint.Step,
            ["train_loss"] = checkpoint.TrainLoss,
            ["valid_loss"] = checkpoint.ValidationLoss,
        };
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
                Metrics = metrics,
                ResumeStateSha256 = sha256,
                CreatedAt = lease.Now,
            });
            db.JobEvents.Add(JobEvents.Message(lease.JobId, $"Checkpoint created at step {checkpoint.Step}", at: lease.Now));
        }, lease.Lost);
        logger.LogInformation("Job {JobId}: checkpoint at step {Step} stored as {Sha256}", lease.JobId, checkpoint.Step, sha256);

        // Stored; the local copy only costs disk from here on.
        Directory.Delete(checkpoint.Directory, recursive: true);
    }
}
