using System.Linq.Expressions;
using System.Text.Json.Nodes;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Query;
using Microsoft.Extensions.Logging;

namespace FineTuneService.Core.Jobs;

/// <summary>What a committed transition puts on a Hangfire queue.</summary>
public enum Dispatch { None, Training, FileValidation, FileScreening, SafetyEvaluation }

/// <summary>
/// A named, guarded change of one row's state: one conditional <c>UPDATE … WHERE id = @id AND <see cref="From"/></c>,
/// so when two actors race (a request and a worker, two workers, two recovery passes) exactly one wins and the others
/// see false. Every transition of every stateful row is listed in this file: <see cref="JobStateMachine"/>,
/// <see cref="FileStateMachine"/> and <see cref="EvaluationStateMachine"/>; nothing else writes a status.
/// </summary>
public sealed record Transition<T>(string Name, Expression<Func<T, bool>> From, Action<UpdateSettersBuilder<T>> Set)
    where T : class, ICreatedRow
{
    /// <summary>The job event written with the change (job transitions only); null for none.</summary>
    public string? Message { get; init; }

    public EventLevel Level { get; init; } = EventLevel.Info;

    /// <summary>The work the row is handed to once the change commits.</summary>
    public Dispatch Dispatch { get; init; }
}

/// <summary>
/// Every legal change of a job's <see cref="JobStatus"/> and of the fields that go with it (control, worker, times):
/// <list type="bullet">
/// <item>validating_files → queued (files_validated), failed (files_invalid), cancelled (cancel);</item>
/// <item>queued → running (claim), paused (pause), cancelled (cancel, cancel_unstarted), paused (pause_unstarted);</item>
/// <item>paused → queued (resume), cancelled (cancel);</item>
/// <item>running → succeeded (succeed), failed (fail), cancelled (cancel_running), queued (release, requeue_orphan),
/// paused (release_paused), failed (fail_orphan), running on another worker (claim of a stale job);</item>
/// <item>running stays running while request_cancel, request_pause or withdraw_pause set the control flag that its
/// worker reads between steps.</item>
/// </list>
/// </summary>
public static class JobStateMachine
{
    // File validation (JobPromotion)

    /// <summary>The job's files are all processed: it waits for a worker.</summary>
    public static Transition<FineTuningJob> FilesValidated() => new("files_validated",
        j => j.Status == JobStatus.ValidatingFiles,
        set => set.SetProperty(j => j.Status, JobStatus.Queued))
    {
        Message = "Files validated, moving job to queued state",
        Dispatch = Dispatch.Training,
    };

    /// <summary>One of the job's files is invalid or gone: the job fails with that file's error.</summary>
    public static Transition<FineTuningJob> FilesInvalid(JsonObject error, DateTime now) => new("files_invalid",
        j => j.Status == JobStatus.ValidatingFiles,
        set => set.SetProperty(j => j.Status, JobStatus.Failed)
            .SetProperty(j => j.Error, error)
            .SetProperty(j => j.FinishedAt, now))
    {
        Message = $"Job failed: {error["message"]}",
        Level = EventLevel.Error,
    };

    // Tenant requests (the API's JobTransitions)

    /// <summary>A job no worker holds is cancelled at once.</summary>
    public static Transition<FineTuningJob> Cancel(DateTime now) => new("cancel",
        j => (j.Status == JobStatus.ValidatingFiles || j.Status == JobStatus.Queued || j.Status == JobStatus.Paused) && j.WorkerId == null,
        set => set.SetProperty(j => j.Status, JobStatus.Cancelled)
            .SetProperty(j => j.FinishedAt, now)
            .SetProperty(j => j.Control, JobControl.None))
    {
        Message = "Job cancelled",
    };

    /// <summary>A running job is asked to stop; its worker cancels after the current step.</summary>
    public static Transition<FineTuningJob> RequestCancel() => new("request_cancel",
        j => j.Status == JobStatus.Running && j.Control != JobControl.Cancel,
        set => set.SetProperty(j => j.Control, JobControl.Cancel))
    {
        Message = "Cancellation requested; the job stops at its next training step",
    };

    /// <summary>A queued job no worker holds is parked until resumed.</summary>
    public static Transition<FineTuningJob> Pause() => new("pause",
        j => j.Status == JobStatus.Queued && j.WorkerId == null && j.Control == JobControl.None,
        set => set.SetProperty(j => j.Status, JobStatus.Paused))
    {
        Message = "Job paused",
    };

    /// <summary>A running job is asked to pause; its worker checkpoints after the current step and releases it.</summary>
    public static Transition<FineTuningJob> RequestPause() => new("request_pause",
        j => j.Status == JobStatus.Running && j.Control == JobControl.None,
        set => set.SetProperty(j => j.Control, JobControl.Pause))
    {
        Message = "Pause requested; the job checkpoints and stops at its next training step",
    };

    /// <summary>A paused job waits for a worker again, which resumes it from its last checkpoint.</summary>
    public static Transition<FineTuningJob> Resume() => new("resume",
        j => j.Status == JobStatus.Paused,
        set => set.SetProperty(j => j.Status, JobStatus.Queued))
    {
        Message = "Job resumed",
        Dispatch = Dispatch.Training,
    };

    /// <summary>A pause request the worker has not reached yet is taken back.</summary>
    public static Transition<FineTuningJob> WithdrawPause() => new("withdraw_pause",
        j => j.Status == JobStatus.Running && j.Control == JobControl.Pause,
        set => set.SetProperty(j => j.Control, JobControl.None))
    {
        Message = "Pause request withdrawn; the job keeps running",
    };

    // A worker's delivery (JobClaims)

    /// <summary>
    /// A worker takes a queued job, or a running one whose worker stopped beating (presumed dead), while starts are
    /// left. Only one worker can win: the heartbeat stamp makes the job look alive to everyone else.
    /// </summary>
    public static Transition<FineTuningJob> Claim(string workerId, DateTime now, DateTime staleBefore, int maxAttempts) => new("claim",
        j => (j.Status == JobStatus.Queued || j.Status == JobStatus.Running)
             && j.Control == JobControl.None
             && j.Attempts < maxAttempts
             && (j.WorkerId == null || j.HeartbeatAt == null || j.HeartbeatAt < staleBefore),
        set => set.SetProperty(j => j.Status, JobStatus.Running)
            .SetProperty(j => j.WorkerId, workerId)
            .SetProperty(j => j.HeartbeatAt, now)
            .SetProperty(j => j.Attempts, j => j.Attempts + 1)
            .SetProperty(j => j.StartedAt, j => j.StartedAt ?? now));

    /// <summary>A delivered job with a cancel request and no live worker (its worker died after the request).</summary>
    public static Transition<FineTuningJob> CancelUnstarted(DateTime now, DateTime staleBefore) => new("cancel_unstarted",
        j => (j.Status == JobStatus.ValidatingFiles || j.Status == JobStatus.Queued || j.Status == JobStatus.Running || j.Status == JobStatus.Paused)
             && j.Control == JobControl.Cancel
             && (j.WorkerId == null || j.HeartbeatAt == null || j.HeartbeatAt < staleBefore),
        set => set.SetProperty(j => j.Status, JobStatus.Cancelled)
            .SetProperty(j => j.Control, JobControl.None)
            .SetProperty(j => j.WorkerId, (string?)null)
            .SetProperty(j => j.FinishedAt, now))
    {
        Message = "The job was cancelled before it started",
    };

    /// <summary>A delivered job with a pause request and no live worker: nothing to checkpoint, it is just parked.</summary>
    public static Transition<FineTuningJob> PauseUnstarted(DateTime staleBefore) => new("pause_unstarted",
        j => (j.Status == JobStatus.ValidatingFiles || j.Status == JobStatus.Queued || j.Status == JobStatus.Running)
             && j.Control == JobControl.Pause
             && (j.WorkerId == null || j.HeartbeatAt == null || j.HeartbeatAt < staleBefore),
        set => set.SetProperty(j => j.Status, JobStatus.Paused)
            .SetProperty(j => j.Control, JobControl.None)
            .SetProperty(j => j.WorkerId, (string?)null))
    {
        Message = "The job was paused",
    };

    // The worker holding the job (FineTuneJobRunner, through its JobLease)

    /// <summary>Training finished and the weights are stored; a held model waits for an admin's review.</summary>
    public static Transition<FineTuningJob> Succeed(string workerId, string fineTunedModel, string resultSha256, long trainedTokens,
        bool heldForReview, DateTime now) => new("succeed",
        Held(workerId),
        set =>
        {
            Finish(set, JobStatus.Succeeded, now);
            set.SetProperty(j => j.FineTunedModel, fineTunedModel)
                .SetProperty(j => j.ResultArtifactSha256, resultSha256)
                .SetProperty(j => j.TrainedTokens, trainedTokens);
            if (heldForReview) set.SetProperty(j => j.Review, ReviewState.Held);
        });

    /// <summary>Training or the safety gate failed the job; a gate failure keeps the weights it judged.</summary>
    public static Transition<FineTuningJob> Fail(string workerId, JsonObject error, DateTime now, string? resultSha256 = null,
        long? trainedTokens = null) => new("fail",
        Held(workerId),
        set =>
        {
            Finish(set, JobStatus.Failed, now);
            set.SetProperty(j => j.Error, error);
            if (resultSha256 is not null)
                set.SetProperty(j => j.ResultArtifactSha256, resultSha256).SetProperty(j => j.TrainedTokens, trainedTokens);
        });

    /// <summary>The worker honoured a cancel request between two steps.</summary>
    public static Transition<FineTuningJob> CancelRunning(string workerId, DateTime now) => new("cancel_running",
        Held(workerId),
        set => Finish(set, JobStatus.Cancelled, now));

    /// <summary>
    /// The worker hands the job back (its host is shutting down) for the next delivery to resume. A clean hand-off gives
    /// its attempt back: the attempt limit is about workers that died, not about pauses or restarts.
    /// </summary>
    public static Transition<FineTuningJob> Release(string workerId) => new("release",
        Held(workerId),
        set => HandBack(set, JobStatus.Queued));

    /// <summary>The worker honoured a pause request: checkpoint saved, job parked until resumed.</summary>
    public static Transition<FineTuningJob> ReleasePaused(string workerId) => new("release_paused",
        Held(workerId),
        set => HandBack(set, JobStatus.Paused));

    // Crash recovery (StaleJobMonitor)

    /// <summary>
    /// The worker stopped beating: queued again to resume from the last checkpoint on any worker. Guarded by the
    /// worker and heartbeat the recovery pass saw, so a worker that beat meanwhile keeps its job. The heartbeat stamp
    /// lets the next pass notice a re-delivery that never starts (<see cref="Redeliver"/>).
    /// </summary>
    public static Transition<FineTuningJob> RequeueOrphan(string? workerId, DateTime? heartbeatAt, DateTime now, string message) => new("requeue_orphan",
        Orphaned(workerId, heartbeatAt),
        set => set.SetProperty(j => j.Status, JobStatus.Queued)
            .SetProperty(j => j.WorkerId, (string?)null)
            .SetProperty(j => j.HeartbeatAt, now)
            .SetProperty(j => j.EstimatedFinish, (DateTime?)null))
    {
        Message = message,
        Level = EventLevel.Warn,
        Dispatch = Dispatch.Training,
    };

    /// <summary>The worker stopped beating and the job has used all its starts: it fails with <c>worker_lost</c>.</summary>
    public static Transition<FineTuningJob> FailOrphan(string? workerId, DateTime? heartbeatAt, JsonObject error, DateTime now) => new("fail_orphan",
        Orphaned(workerId, heartbeatAt),
        set => set.SetProperty(j => j.Status, JobStatus.Failed)
            .SetProperty(j => j.Error, error)
            .SetProperty(j => j.FinishedAt, now)
            .SetProperty(j => j.WorkerId, (string?)null)
            .SetProperty(j => j.Control, JobControl.None)
            .SetProperty(j => j.EstimatedFinish, (DateTime?)null))
    {
        Message = $"The job failed: {error["message"]}",
        Level = EventLevel.Error,
    };

    /// <summary>
    /// Queued again by recovery but still not started after a whole stale timeout: the delivery may have been lost,
    /// so it is sent again (a duplicate is a no-op claim). Not a change of state; the stamp is the guard.
    /// </summary>
    public static Transition<FineTuningJob> Redeliver(DateTime? heartbeatAt, DateTime now) => new("redeliver",
        j => j.Status == JobStatus.Queued && j.WorkerId == null && j.HeartbeatAt == heartbeatAt,
        set => set.SetProperty(j => j.HeartbeatAt, now))
    {
        Dispatch = Dispatch.Training,
    };

    private static Expression<Func<FineTuningJob, bool>> Held(string workerId) =>
        j => j.Status == JobStatus.Running && j.WorkerId == workerId;

    private static Expression<Func<FineTuningJob, bool>> Orphaned(string? workerId, DateTime? heartbeatAt) =>
        j => j.Status == JobStatus.Running && j.WorkerId == workerId && j.HeartbeatAt == heartbeatAt;

    private static void Finish(UpdateSettersBuilder<FineTuningJob> set, JobStatus status, DateTime now) =>
        set.SetProperty(j => j.Status, status)
            .SetProperty(j => j.FinishedAt, now)
            .SetProperty(j => j.EstimatedFinish, (DateTime?)null)
            .SetProperty(j => j.Control, JobControl.None)
            .SetProperty(j => j.WorkerId, (string?)null);

    private static void HandBack(UpdateSettersBuilder<FineTuningJob> set, JobStatus status) =>
        set.SetProperty(j => j.Status, status)
            .SetProperty(j => j.Attempts, j => j.Attempts > 0 ? j.Attempts - 1 : 0)
            .SetProperty(j => j.Control, JobControl.None)
            .SetProperty(j => j.WorkerId, (string?)null)
            .SetProperty(j => j.HeartbeatAt, (DateTime?)null)
            .SetProperty(j => j.EstimatedFinish, (DateTime?)null);
}

/// <summary>
/// Every legal change of a file's <see cref="FileStatus"/>:
/// <c>uploaded → processed | error | awaiting_screening</c> (validation), <c>awaiting_screening → processed | error</c>
/// (harm screening).
/// </summary>
public static class FileStateMachine
{
    /// <summary>Validation ended: <paramref name="status"/> is processed or error (a prompt set, or training data not screened).</summary>
    public static Transition<StoredFile> Validated(FileStatus status, string? details, JsonObject report)
    {
        if (status is not (FileStatus.Processed or FileStatus.Error)) throw new ArgumentOutOfRangeException(nameof(status), status, null);
        return new("validated",
            f => f.Status == FileStatus.Uploaded,
            set => set.SetProperty(f => f.Status, status)
                .SetProperty(f => f.StatusDetails, details)
                .SetProperty(f => f.ValidationReport, report));
    }

    /// <summary>Structurally valid training data goes on to harm screening; jobs keep waiting on it.</summary>
    public static Transition<StoredFile> AwaitScreening(JsonObject report) => new("await_screening",
        f => f.Status == FileStatus.Uploaded,
        set => set.SetProperty(f => f.Status, FileStatus.AwaitingScreening)
            .SetProperty(f => f.StatusDetails, (string?)null)
            .SetProperty(f => f.ValidationReport, report))
    {
        Dispatch = Dispatch.FileScreening,
    };

    /// <summary>Screening judged the file: processed, or error (unsafe, or unreadable) with its details.</summary>
    public static Transition<StoredFile> Screened(FileStatus status, string? details, JsonObject? report)
    {
        if (status is not (FileStatus.Processed or FileStatus.Error)) throw new ArgumentOutOfRangeException(nameof(status), status, null);
        return new("screened",
            f => f.Status == FileStatus.AwaitingScreening,
            set =>
            {
                set.SetProperty(f => f.Status, status).SetProperty(f => f.StatusDetails, details);
                if (report is not null) set.SetProperty(f => f.ValidationReport, report);
            });
    }
}

/// <summary>
/// Every legal change of a stand-alone safety evaluation's <see cref="SafetyEvaluationStatus"/>:
/// <c>queued → running → succeeded | failed</c>, and <c>running → queued</c> when its worker shuts down.
/// </summary>
public static class EvaluationStateMachine
{
    /// <summary>A worker starts the evaluation (again, from the start, when an earlier run was interrupted).</summary>
    public static Transition<SafetyEvaluation> Start(DateTime now) => new("start",
        e => e.Status == SafetyEvaluationStatus.Queued || e.Status == SafetyEvaluationStatus.Running,
        set => set.SetProperty(e => e.Status, SafetyEvaluationStatus.Running).SetProperty(e => e.StartedAt, now));

    public static Transition<SafetyEvaluation> Succeed(JsonObject report, DateTime now) => new("succeed",
        e => e.Status == SafetyEvaluationStatus.Running,
        set => set.SetProperty(e => e.Status, SafetyEvaluationStatus.Succeeded)
            .SetProperty(e => e.Report, report)
            .SetProperty(e => e.FinishedAt, now));

    public static Transition<SafetyEvaluation> Fail(JsonObject error, DateTime now) => new("fail",
        e => e.Status == SafetyEvaluationStatus.Running,
        set => set.SetProperty(e => e.Status, SafetyEvaluationStatus.Failed)
            .SetProperty(e => e.Error, error)
            .SetProperty(e => e.FinishedAt, now));

    /// <summary>The worker is shutting down: Hangfire delivers the evaluation again, which starts it over.</summary>
    public static Transition<SafetyEvaluation> Release() => new("release",
        e => e.Status == SafetyEvaluationStatus.Running,
        set => set.SetProperty(e => e.Status, SafetyEvaluationStatus.Queued).SetProperty(e => e.StartedAt, (DateTime?)null));
}

/// <summary>Applies transitions: inside a caller's transaction, or in one of their own with the dispatch after it.</summary>
public sealed class StateMachine(IJobScheduler scheduler, TimeProvider clock, ILogger<StateMachine> logger)
{
    /// <summary>
    /// Applies <paramref name="transition"/> to row <paramref name="id"/> in the caller's transaction and, when it wins,
    /// adds its job event to <paramref name="db"/> (written by the caller's SaveChanges). The caller dispatches.
    /// </summary>
    public static async Task<bool> ApplyAsync<T>(FineTuneDbContext db, string id, Transition<T> transition, DateTime now,
        CancellationToken cancellationToken) where T : class, ICreatedRow
    {
        var won = await db.Set<T>().Where(r => r.Id == id).Where(transition.From).ExecuteUpdateAsync(transition.Set, cancellationToken) == 1;
        if (won && transition.Message is not null) db.JobEvents.Add(JobEvents.Message(id, transition.Message, transition.Level, now));
        return won;
    }

    /// <summary>
    /// Applies <paramref name="transition"/> with its event in one transaction under EF's retrying strategy, then hands
    /// the row to its queue. Returns false, changing nothing, when the row is not in a state the transition leaves.
    /// </summary>
    public async Task<bool> TryAsync<T>(FineTuneDbContext db, string id, Transition<T> transition, CancellationToken cancellationToken)
        where T : class, ICreatedRow
    {
        var won = await db.Database.CreateExecutionStrategy().ExecuteAsync(async ct =>
        {
            db.ChangeTracker.Clear();
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            if (!await ApplyAsync(db, id, transition, clock.GetUtcNow().UtcDateTime, ct)) return false;
            await db.SaveChangesAsync(ct);
            await tx.CommitAsync(ct);
            return true;
        }, cancellationToken);
        if (won) Send(transition.Dispatch, id);
        return won;
    }

    /// <summary>Puts <paramref name="id"/> on the queue a committed transition named.</summary>
    public void Send(Dispatch dispatch, string id)
    {
        if (dispatch == Dispatch.None) return;
        var hangfireId = dispatch switch
        {
            Dispatch.Training => scheduler.EnqueueTraining(id),
            Dispatch.FileValidation => scheduler.EnqueueFileValidation(id),
            Dispatch.FileScreening => scheduler.EnqueueFileScreening(id),
            Dispatch.SafetyEvaluation => scheduler.EnqueueSafetyEvaluation(id),
            _ => throw new ArgumentOutOfRangeException(nameof(dispatch), dispatch, null),
        };
        logger.LogInformation("{Id} sent to {Dispatch} as Hangfire job {HangfireId}", id, dispatch, hangfireId);
    }
}
