using System.Linq.Expressions;
using System.Text.Json.Nodes;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Query;

namespace FineTuneService.Core.Jobs;

/// <summary>
/// A named, guarded change of one row's state: one conditional <c>UPDATE … WHERE id = @id AND <see cref="From"/></c>,
/// so when two actors race (a request and a worker, two workers, two recovery passes) exactly one wins and the others
/// see false. Every transition of every stateful row is listed in this file: <see cref="JobStateMachine"/>,
/// <see cref="FileStateMachine"/>, <see cref="EvaluationStateMachine"/>, <see cref="HardeningStateMachine"/> and
/// <see cref="BaseModelStateMachine"/> (a base model's located safety layers); nothing else writes a status.
/// </summary>
public sealed record Transition<T>(string Name, Expression<Func<T, bool>> From, Action<UpdateSettersBuilder<T>> Set)
    where T : class, ICreatedRow
{
    /// <summary>The job event written with the change (job transitions only); null for none.</summary>
    public string? Message { get; init; }

    public EventLevel Level { get; init; } = EventLevel.Info;

    /// <summary>The queue the row is handed to: through the <see cref="Outbox"/>, written with the change.</summary>
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
/// worker reads between steps;</item>
/// <item>succeeded and held for review → approved (approve_held) or rejected (reject_held); failed by the safety gate →
/// succeeded and approved (approve_gate_failed).</item>
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
    /// <param name="deviceKind">The kind of device the worker trains on (<see cref="DeviceKinds"/>): the job's throughput is recorded under it.</param>
    public static Transition<FineTuningJob> Claim(string workerId, string deviceKind, DateTime now, DateTime staleBefore, int maxAttempts) => new("claim",
        j => (j.Status == JobStatus.Queued || j.Status == JobStatus.Running)
             && j.Control == JobControl.None
             && j.Attempts < maxAttempts
             && (j.WorkerId == null || j.HeartbeatAt == null || j.HeartbeatAt < staleBefore),
        set => set.SetProperty(j => j.Status, JobStatus.Running)
            .SetProperty(j => j.WorkerId, workerId)
            .SetProperty(j => j.DeviceKind, deviceKind)
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

    // An admin's safety review (the API's SafetyReview)

    /// <summary>An admin lists a model the safety gate held to its tenant.</summary>
    public static Transition<FineTuningJob> ApproveHeld(string message) => new("approve_held",
        j => j.Status == JobStatus.Succeeded && j.Review == ReviewState.Held,
        set => set.SetProperty(j => j.Review, ReviewState.Approved))
    {
        Message = message,
    };

    /// <summary>An admin keeps a held model hidden for good.</summary>
    public static Transition<FineTuningJob> RejectHeld(string message) => new("reject_held",
        j => j.Status == JobStatus.Succeeded && j.Review == ReviewState.Held,
        set => set.SetProperty(j => j.Review, ReviewState.Rejected))
    {
        Message = message,
    };

    /// <summary>
    /// An admin overrides the safety gate: a job it failed, whose weights were kept, succeeds with its model named
    /// and listed. The gate's verdict stays in the job's scores and decisions; the caller checks the failure was the
    /// gate's (<c>unsafe_model</c>).
    /// </summary>
    public static Transition<FineTuningJob> ApproveGateFailed(string fineTunedModel, string message) => new("approve_gate_failed",
        j => j.Status == JobStatus.Failed && j.ResultArtifactSha256 != null && j.FineTunedModel == null && j.Review == ReviewState.NotRequired,
        set => set.SetProperty(j => j.Status, JobStatus.Succeeded)
            .SetProperty(j => j.FineTunedModel, fineTunedModel)
            .SetProperty(j => j.Error, (JsonObject?)null)
            .SetProperty(j => j.Review, ReviewState.Approved))
    {
        Message = message,
    };

    // Crash recovery (StaleJobMonitor)

    /// <summary>
    /// The worker stopped beating: queued again to resume from the last checkpoint on any worker. Guarded by the
    /// worker and heartbeat the recovery pass saw, so a worker that beat meanwhile keeps its job.
    /// </summary>
    public static Transition<FineTuningJob> RequeueOrphan(string? workerId, DateTime? heartbeatAt, string message) => new("requeue_orphan",
        Orphaned(workerId, heartbeatAt),
        set => set.SetProperty(j => j.Status, JobStatus.Queued)
            .SetProperty(j => j.WorkerId, (string?)null)
            .SetProperty(j => j.HeartbeatAt, (DateTime?)null)
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
/// Every legal change of a stand-alone safety evaluation's <see cref="SafetyEvaluationStatus"/>, held by a worker
/// like a job: queued → running (claim), running → succeeded | failed (its worker), queued (release, when its worker
/// shuts down; requeue_orphan, when its worker died), failed (fail_orphan, after too many starts).
/// </summary>
public static class EvaluationStateMachine
{
    /// <summary>A worker starts the evaluation: a queued one, or a running one whose worker stopped beating.</summary>
    public static Transition<SafetyEvaluation> Claim(string workerId, DateTime now, DateTime staleBefore, int maxAttempts) => new("claim",
        e => (e.Status == SafetyEvaluationStatus.Queued
              || (e.Status == SafetyEvaluationStatus.Running && (e.HeartbeatAt == null || e.HeartbeatAt < staleBefore)))
             && e.Attempts < maxAttempts,
        set => set.SetProperty(e => e.Status, SafetyEvaluationStatus.Running)
            .SetProperty(e => e.WorkerId, workerId)
            .SetProperty(e => e.HeartbeatAt, now)
            .SetProperty(e => e.Attempts, e => e.Attempts + 1)
            .SetProperty(e => e.StartedAt, now));

    public static Transition<SafetyEvaluation> Succeed(string workerId, JsonObject report, DateTime now) => new("succeed",
        Held(workerId),
        set => Finish(set, SafetyEvaluationStatus.Succeeded, now).SetProperty(e => e.Report, report));

    public static Transition<SafetyEvaluation> Fail(string workerId, JsonObject error, DateTime now) => new("fail",
        Held(workerId),
        set => Finish(set, SafetyEvaluationStatus.Failed, now).SetProperty(e => e.Error, error));

    /// <summary>The worker is shutting down: Hangfire delivers the evaluation again, which starts it over.</summary>
    public static Transition<SafetyEvaluation> Release(string workerId) => new("release",
        Held(workerId),
        set => set.SetProperty(e => e.Status, SafetyEvaluationStatus.Queued)
            .SetProperty(e => e.StartedAt, (DateTime?)null)
            .SetProperty(e => e.WorkerId, (string?)null)
            .SetProperty(e => e.HeartbeatAt, (DateTime?)null)
            .SetProperty(e => e.Attempts, e => e.Attempts > 0 ? e.Attempts - 1 : 0));

    /// <summary>Its worker stopped beating: queued again for any worker (an evaluation starts over, it has no checkpoints).</summary>
    public static Transition<SafetyEvaluation> RequeueOrphan(string? workerId, DateTime? heartbeatAt) => new("requeue_orphan",
        Orphaned(workerId, heartbeatAt),
        set => set.SetProperty(e => e.Status, SafetyEvaluationStatus.Queued)
            .SetProperty(e => e.StartedAt, (DateTime?)null)
            .SetProperty(e => e.WorkerId, (string?)null)
            .SetProperty(e => e.HeartbeatAt, (DateTime?)null))
    {
        Dispatch = Dispatch.SafetyEvaluation,
    };

    /// <summary>Its worker stopped beating and it has used all its starts: it fails with <c>worker_lost</c>.</summary>
    public static Transition<SafetyEvaluation> FailOrphan(string? workerId, DateTime? heartbeatAt, JsonObject error, DateTime now) => new("fail_orphan",
        Orphaned(workerId, heartbeatAt),
        set => Finish(set, SafetyEvaluationStatus.Failed, now).SetProperty(e => e.Error, error));

    private static Expression<Func<SafetyEvaluation, bool>> Held(string workerId) =>
        e => e.Status == SafetyEvaluationStatus.Running && e.WorkerId == workerId;

    private static Expression<Func<SafetyEvaluation, bool>> Orphaned(string? workerId, DateTime? heartbeatAt) =>
        e => e.Status == SafetyEvaluationStatus.Running && e.WorkerId == workerId && e.HeartbeatAt == heartbeatAt;

    private static UpdateSettersBuilder<SafetyEvaluation> Finish(UpdateSettersBuilder<SafetyEvaluation> set, SafetyEvaluationStatus status, DateTime now) =>
        set.SetProperty(e => e.Status, status)
            .SetProperty(e => e.FinishedAt, now)
            .SetProperty(e => e.WorkerId, (string?)null);
}

/// <summary>
/// Every legal change of a hardening run's <see cref="HardeningRunStatus"/>, held by a worker like a safety evaluation:
/// queued → running (claim), running → succeeded | failed (its worker), queued (release, when its worker shuts down;
/// requeue_orphan, when its worker died), failed (fail_orphan, after too many starts). A run has no checkpoints: a
/// run started again starts over.
/// </summary>
public static class HardeningStateMachine
{
    /// <summary>A worker starts the run: a queued one, or a running one whose worker stopped beating.</summary>
    public static Transition<HardeningRun> Claim(string workerId, DateTime now, DateTime staleBefore, int maxAttempts) => new("claim",
        r => (r.Status == HardeningRunStatus.Queued
              || (r.Status == HardeningRunStatus.Running && (r.HeartbeatAt == null || r.HeartbeatAt < staleBefore)))
             && r.Attempts < maxAttempts,
        set => set.SetProperty(r => r.Status, HardeningRunStatus.Running)
            .SetProperty(r => r.WorkerId, workerId)
            .SetProperty(r => r.HeartbeatAt, now)
            .SetProperty(r => r.Attempts, r => r.Attempts + 1)
            .SetProperty(r => r.StartedAt, now));

    /// <summary>The hardened model is stored, registered and scored.</summary>
    public static Transition<HardeningRun> Succeed(string workerId, JsonObject report, DateTime now) => new("succeed",
        Held(workerId),
        set => Finish(set, HardeningRunStatus.Succeeded, now).SetProperty(r => r.Report, report));

    public static Transition<HardeningRun> Fail(string workerId, JsonObject error, DateTime now) => new("fail",
        Held(workerId),
        set => Finish(set, HardeningRunStatus.Failed, now).SetProperty(r => r.Error, error));

    /// <summary>The worker is shutting down: Hangfire delivers the run again, which starts it over.</summary>
    public static Transition<HardeningRun> Release(string workerId) => new("release",
        Held(workerId),
        set => set.SetProperty(r => r.Status, HardeningRunStatus.Queued)
            .SetProperty(r => r.StartedAt, (DateTime?)null)
            .SetProperty(r => r.WorkerId, (string?)null)
            .SetProperty(r => r.HeartbeatAt, (DateTime?)null)
            .SetProperty(r => r.Attempts, r => r.Attempts > 0 ? r.Attempts - 1 : 0));

    /// <summary>Its worker stopped beating: queued again for any worker.</summary>
    public static Transition<HardeningRun> RequeueOrphan(string? workerId, DateTime? heartbeatAt) => new("requeue_orphan",
        Orphaned(workerId, heartbeatAt),
        set => set.SetProperty(r => r.Status, HardeningRunStatus.Queued)
            .SetProperty(r => r.StartedAt, (DateTime?)null)
            .SetProperty(r => r.WorkerId, (string?)null)
            .SetProperty(r => r.HeartbeatAt, (DateTime?)null))
    {
        Dispatch = Dispatch.Hardening,
    };

    /// <summary>Its worker stopped beating and it has used all its starts: it fails with <c>worker_lost</c>.</summary>
    public static Transition<HardeningRun> FailOrphan(string? workerId, DateTime? heartbeatAt, JsonObject error, DateTime now) => new("fail_orphan",
        Orphaned(workerId, heartbeatAt),
        set => Finish(set, HardeningRunStatus.Failed, now).SetProperty(r => r.Error, error));

    private static Expression<Func<HardeningRun, bool>> Held(string workerId) =>
        r => r.Status == HardeningRunStatus.Running && r.WorkerId == workerId;

    private static Expression<Func<HardeningRun, bool>> Orphaned(string? workerId, DateTime? heartbeatAt) =>
        r => r.Status == HardeningRunStatus.Running && r.WorkerId == workerId && r.HeartbeatAt == heartbeatAt;

    private static UpdateSettersBuilder<HardeningRun> Finish(UpdateSettersBuilder<HardeningRun> set, HardeningRunStatus status, DateTime now) =>
        set.SetProperty(r => r.Status, status)
            .SetProperty(r => r.FinishedAt, now)
            .SetProperty(r => r.WorkerId, (string?)null);
}

/// <summary>
/// The one change of a base model's <see cref="SafetyLayersStatus"/> after its import: pending → ready (located) or
/// failed, stored by the locator run of the weights it measured. An import of new weights starts it at pending again
/// (or ready, when the folder ships its layers): that is the row's first state, written with the row.
/// </summary>
public static class BaseModelStateMachine
{
    /// <summary>
    /// The locator's result for the weights <paramref name="artifactSha256"/>: loses when the model was re-imported
    /// meanwhile (its own run follows) or another delivery stored first.
    /// </summary>
    public static Transition<BaseModel> SafetyLayersLocated(string artifactSha256, JsonObject? located, string? error) => new("safety_layers_located",
        m => m.ArtifactSha256 == artifactSha256 && m.SafetyLayersStatus == SafetyLayersStatus.Pending,
        set => set.SetProperty(m => m.SafetyLayersStatus, located is null ? SafetyLayersStatus.Failed : SafetyLayersStatus.Ready)
            .SetProperty(m => m.SafetyLayers, located)
            .SetProperty(m => m.SafetyLayersError, error));
}

/// <summary>
/// Applies transitions: inside a caller's transaction, or in one of their own. A transition that hands the row to a
/// queue writes its <see cref="OutboxMessage"/> in the same transaction, so the change and its delivery commit
/// together; the message is sent after the commit, or by the outbox sweeper when the sender died first.
/// </summary>
public sealed class StateMachine(Outbox outbox, TimeProvider clock)
{
    /// <summary>
    /// Applies <paramref name="transition"/> to row <paramref name="id"/> in the caller's transaction and, when it wins,
    /// adds its job event and its outbox message to <paramref name="db"/>: the caller's SaveChanges writes them with the
    /// change, and the outbox sweeper sends the message unless the caller does (<see cref="Outbox.SendAsync"/>).
    /// </summary>
    public static async Task<bool> ApplyAsync<T>(FineTuneDbContext db, string id, Transition<T> transition, DateTime now,
        CancellationToken cancellationToken) where T : class, ICreatedRow
    {
        if (await db.Set<T>().Where(r => r.Id == id).Where(transition.From).ExecuteUpdateAsync(transition.Set, cancellationToken) != 1)
            return false;
        if (transition.Message is not null) db.JobEvents.Add(JobEvents.Message(id, transition.Message, transition.Level, now));
        if (transition.Dispatch != Dispatch.None) Outbox.Add(db, transition.Dispatch, id);
        return true;
    }

    /// <summary>
    /// Applies <paramref name="transition"/> with its event and outbox message in one transaction under EF's retrying
    /// strategy, plus whatever <paramref name="alsoWrite"/> adds (a decision row, the moved-up events of the jobs
    /// behind, say; it runs after the change, in the same transaction, and may query), then sends the message.
    /// Returns false, changing nothing, when the row is not in a state the transition leaves.
    /// </summary>
    public async Task<bool> TryAsync<T>(FineTuneDbContext db, string id, Transition<T> transition, CancellationToken cancellationToken,
        Func<FineTuneDbContext, CancellationToken, Task>? alsoWrite = null) where T : class, ICreatedRow
    {
        var won = await db.Database.CreateExecutionStrategy().ExecuteAsync(async ct =>
        {
            db.ChangeTracker.Clear();
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            if (!await ApplyAsync(db, id, transition, clock.GetUtcNow().UtcDateTime, ct)) return false;
            if (alsoWrite is not null) await alsoWrite(db, ct);
            await db.SaveChangesAsync(ct);
            await tx.CommitAsync(ct);
            return true;
        }, cancellationToken);
        if (won) await outbox.SendCommittedAsync(db);
        return won;
    }
}
