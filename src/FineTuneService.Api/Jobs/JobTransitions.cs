using System.Linq.Expressions;
using FineTuneService.Api.Contracts;
using FineTuneService.Api.Errors;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Jobs;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Query;

namespace FineTuneService.Api.Jobs;

/// <summary>
/// Cancel, pause and resume as conditional updates, so a request racing a worker's claim or release can never
/// leave the job half-changed. A job no worker holds changes at once; a running job gets a control request the
/// worker honours between steps. Anything else is a 400 invalid_request_error.
/// </summary>
internal sealed class JobTransitions(FineTuneDbContext db, IJobScheduler scheduler)
{
    public async Task CancelAsync(FineTuningJob job, CancellationToken cancellationToken)
    {
        var now = DateTime.UtcNow;
        if (await TryAsync(job.Id,
                j => (j.Status == JobStatus.ValidatingFiles || j.Status == JobStatus.Queued) && j.WorkerId == null,
                set => set.SetProperty(j => j.Status, JobStatus.Cancelled)
                    .SetProperty(j => j.FinishedAt, now)
                    .SetProperty(j => j.Control, JobControl.None)
                    .SetProperty(j => j.Paused, false),
                "Job cancelled", cancellationToken)) return;

        if (await TryAsync(job.Id, j => j.Status == JobStatus.Running && j.Control != JobControl.Cancel,
                set => set.SetProperty(j => j.Control, JobControl.Cancel),
                "Cancellation requested; the job stops at its next training step", cancellationToken)) return;

        var current = await CurrentAsync(job.Id, cancellationToken);
        if (current is { Status: JobStatus.Running, Control: JobControl.Cancel }) return; // already requested: idempotent
        throw ApiException.InvalidRequest($"Cannot cancel a job that is {JobStatusNames.Of(current.Status)}.", code: "invalid_state");
    }

    public async Task PauseAsync(FineTuningJob job, CancellationToken cancellationToken)
    {
        if (await TryAsync(job.Id,
                j => j.Status == JobStatus.Queued && !j.Paused && j.WorkerId == null && j.Control == JobControl.None,
                set => set.SetProperty(j => j.Paused, true),
                "Job paused", cancellationToken)) return;

        if (await TryAsync(job.Id, j => j.Status == JobStatus.Running && j.Control == JobControl.None,
                set => set.SetProperty(j => j.Control, JobControl.Pause),
                "Pause requested; the job checkpoints and stops at its next training step", cancellationToken)) return;

        var current = await CurrentAsync(job.Id, cancellationToken);
        var state = current.Paused ? "already paused" : current.Control == JobControl.Pause ? "already pausing" : JobStatusNames.Of(current.Status);
        throw ApiException.InvalidRequest($"Only queued or running jobs can be paused; this job is {state}.", code: "invalid_state");
    }

    public async Task ResumeAsync(FineTuningJob job, CancellationToken cancellationToken)
    {
        if (await TryAsync(job.Id, j => j.Status == JobStatus.Queued && j.Paused,
                set => set.SetProperty(j => j.Paused, false),
                "Job resumed", cancellationToken))
        {
            scheduler.EnqueueTraining(job.Id);
            return;
        }

        if (await TryAsync(job.Id, j => j.Status == JobStatus.Running && j.Control == JobControl.Pause,
                set => set.SetProperty(j => j.Control, JobControl.None),
                "Pause request withdrawn; the job keeps running", cancellationToken)) return;

        var current = await CurrentAsync(job.Id, cancellationToken);
        throw ApiException.InvalidRequest($"Only paused jobs can be resumed; this job is {JobStatusNames.Of(current.Status)}.", code: "invalid_state");
    }

    private Task<bool> TryAsync(string jobId, Expression<Func<FineTuningJob, bool>> when,
        Action<UpdateSettersBuilder<FineTuningJob>> set, string message, CancellationToken cancellationToken) =>
        db.Database.CreateExecutionStrategy().ExecuteAsync(async ct =>
        {
            db.ChangeTracker.Clear();
            await using var transaction = await db.Database.BeginTransactionAsync(ct);
            var changed = await db.Jobs.Where(j => j.Id == jobId).Where(when).ExecuteUpdateAsync(set, ct);
            if (changed == 0) return false;
            db.JobEvents.Add(JobEventLog.Message(jobId, message));
            await db.SaveChangesAsync(ct);
            await transaction.CommitAsync(ct);
            return true;
        }, cancellationToken);

    private Task<FineTuningJob> CurrentAsync(string jobId, CancellationToken cancellationToken) =>
        db.Jobs.AsNoTracking().SingleAsync(j => j.Id == jobId, cancellationToken);
}
