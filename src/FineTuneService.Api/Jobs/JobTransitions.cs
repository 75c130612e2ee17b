using FineTuneService.Api.Contracts;
using FineTuneService.Api.Errors;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Jobs;
using Microsoft.EntityFrameworkCore;

namespace FineTuneService.Api.Jobs;

/// <summary>
/// Cancel, pause and resume requests, each tried as the state machine's transitions in order (see
/// <see cref="JobStateMachine"/>), so a request racing a worker's claim or release can never leave the job
/// half-changed. A job no worker holds changes at once; a running job gets a control request the worker honours
/// between steps. Anything else is a 400 invalid_request_error.
/// </summary>
internal sealed class JobTransitions(FineTuneDbContext db, StateMachine states, TimeProvider clock)
{
    public async Task CancelAsync(FineTuningJob job, CancellationToken cancellationToken)
    {
        if (await states.TryAsync(db, job.Id, JobStateMachine.Cancel(clock.GetUtcNow().UtcDateTime), cancellationToken,
                MovedUp(job, "a job ahead of it was cancelled")))
            return;
        if (await states.TryAsync(db, job.Id, JobStateMachine.RequestCancel(), cancellationToken)) return;

        var current = await CurrentAsync(job.Id, cancellationToken);
        if (current is { Status: JobStatus.Running, Control: JobControl.Cancel }) return; // already requested: idempotent
        throw ApiException.InvalidRequest($"Cannot cancel a job that is {JobStatusNames.Of(current.Status)}.", code: "invalid_state");
    }

    public async Task PauseAsync(FineTuningJob job, CancellationToken cancellationToken)
    {
        if (await states.TryAsync(db, job.Id, JobStateMachine.Pause(), cancellationToken, MovedUp(job, "a job ahead of it was paused")))
            return;
        if (await states.TryAsync(db, job.Id, JobStateMachine.RequestPause(), cancellationToken)) return;

        var current = await CurrentAsync(job.Id, cancellationToken);
        var state = current.Status == JobStatus.Paused ? "already paused"
            : current.Control == JobControl.Pause ? "already pausing" : JobStatusNames.Of(current.Status);
        throw ApiException.InvalidRequest($"Only queued or running jobs can be paused; this job is {state}.", code: "invalid_state");
    }

    public async Task ResumeAsync(FineTuningJob job, CancellationToken cancellationToken)
    {
        if (await states.TryAsync(db, job.Id, JobStateMachine.Resume(), cancellationToken)) return;
        if (await states.TryAsync(db, job.Id, JobStateMachine.WithdrawPause(), cancellationToken)) return;

        var current = await CurrentAsync(job.Id, cancellationToken);
        throw ApiException.InvalidRequest($"Only paused jobs can be resumed; this job is {JobStatusNames.Of(current.Status)}.", code: "invalid_state");
    }

    /// <summary>
    /// When a queued job leaves the queue, the jobs behind it each move up one place: their events are written in the
    /// transaction of the change, after it, so they list the queue as it is once the job has left.
    /// </summary>
    private static Func<FineTuneDbContext, CancellationToken, Task>? MovedUp(FineTuningJob job, string reason) =>
        job.Status != JobStatus.Queued ? null : async (d, ct) => d.JobEvents.AddRange(await JobQueue.MovedUpEventsAsync(d, job, ct, reason));

    private Task<FineTuningJob> CurrentAsync(string jobId, CancellationToken cancellationToken) =>
        db.Jobs.AsNoTracking().SingleAsync(j => j.Id == jobId, cancellationToken);
}
