using System.Text.Json.Nodes;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace FineTuneService.Core.Jobs;

/// <summary>
/// Moves a job out of validating_files once its files are validated: to queued (and onto the gpu queue) when they
/// are all processed, to failed with the file's error when one is invalid. Safe to call any number of times, from
/// job creation and from file validation alike: only the call whose conditional update wins acts.
/// </summary>
public sealed class JobPromotion(FineTuneDbContext db, IJobScheduler scheduler, ILogger<JobPromotion> logger)
{
    /// <summary>Promotes every job waiting on <paramref name="fileId"/>.</summary>
    public async Task PromoteWaitingOnAsync(string fileId, CancellationToken cancellationToken)
    {
        var jobIds = await db.Jobs.AsNoTracking()
            .Where(j => j.Status == JobStatus.ValidatingFiles && (j.TrainingFileId == fileId || j.ValidationFileId == fileId))
            .Select(j => j.Id)
            .ToListAsync(cancellationToken);
        foreach (var jobId in jobIds) await PromoteAsync(jobId, cancellationToken);
    }

    public async Task PromoteAsync(string jobId, CancellationToken cancellationToken)
    {
        var job = await db.Jobs.AsNoTracking().SingleOrDefaultAsync(j => j.Id == jobId, cancellationToken);
        if (job is not { Status: JobStatus.ValidatingFiles }) return;

        var fileIds = new[] { job.TrainingFileId, job.ValidationFileId }.OfType<string>().ToList();
        var files = await db.Files.AsNoTracking().Where(f => f.TenantId == job.TenantId && fileIds.Contains(f.Id)).ToListAsync(cancellationToken);

        JsonObject? error = null;
        var pending = false;
        foreach (var (param, fileId) in new[] { ("training_file", job.TrainingFileId), ("validation_file", job.ValidationFileId) })
        {
            if (fileId is null) continue;
            var file = files.SingleOrDefault(f => f.Id == fileId);
            if (file is null || file.DeletedAt is not null)
                error ??= Error("file_not_found", $"The {param} {fileId} was deleted before the job started.", param);
            else if (file.Status == FileStatus.Error)
                error ??= Error(FirstErrorCode(file) ?? "invalid_file", $"The {param} {fileId} is invalid: {file.StatusDetails}", param);
            else if (file.Status == FileStatus.Uploaded)
                pending = true;
        }

        if (error is not null) await FailAsync(job.Id, error, cancellationToken);
        else if (!pending) await QueueAsync(job.Id, cancellationToken);
    }

    private async Task FailAsync(string jobId, JsonObject error, CancellationToken cancellationToken)
    {
        var now = DateTime.UtcNow;
        await InTransactionAsync(async () =>
        {
            var changed = await db.Jobs.Where(j => j.Id == jobId && j.Status == JobStatus.ValidatingFiles)
                .ExecuteUpdateAsync(set => set
                    .SetProperty(j => j.Status, JobStatus.Failed)
                    .SetProperty(j => j.Error, error)
                    .SetProperty(j => j.FinishedAt, now), cancellationToken);
            if (changed == 1) db.JobEvents.Add(JobEventLog.Message(jobId, $"Job failed: {error["message"]}", EventLevel.Error));
            return changed == 1;
        }, cancellationToken);
    }

    private async Task QueueAsync(string jobId, CancellationToken cancellationToken)
    {
        var queued = await InTransactionAsync(async () =>
        {
            var changed = await db.Jobs.Where(j => j.Id == jobId && j.Status == JobStatus.ValidatingFiles)
                .ExecuteUpdateAsync(set => set.SetProperty(j => j.Status, JobStatus.Queued), cancellationToken);
            if (changed == 1) db.JobEvents.Add(JobEventLog.Message(jobId, "Files validated, moving job to queued state"));
            return changed == 1;
        }, cancellationToken);
        if (!queued) return;
        var hangfireId = scheduler.EnqueueTraining(jobId);
        logger.LogInformation("Job {JobId} queued for training as Hangfire job {HangfireId}", jobId, hangfireId);
    }

    /// <summary>Runs a conditional update plus its event in one transaction under EF's retrying strategy.</summary>
    private Task<bool> InTransactionAsync(Func<Task<bool>> work, CancellationToken cancellationToken) =>
        db.Database.CreateExecutionStrategy().ExecuteAsync(async ct =>
        {
            db.ChangeTracker.Clear();
            await using var transaction = await db.Database.BeginTransactionAsync(ct);
            var changed = await work();
            await db.SaveChangesAsync(ct);
            await transaction.CommitAsync(ct);
            return changed;
        }, cancellationToken);

    private static JsonObject Error(string code, string message, string param) =>
        new() { ["code"] = code, ["message"] = message, ["param"] = param };

    private static string? FirstErrorCode(StoredFile file) =>
        file.ValidationReport?["errors"] is JsonArray { Count: > 0 } errors ? errors[0]?["code"]?.GetValue<string>() : null;
}
