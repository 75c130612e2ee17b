using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FineTuneService.Core.Artifacts;

/// <summary>Artifact retention settings: section "Artifacts:Retention".</summary>
public sealed record ArtifactRetentionOptions
{
    public const string Section = "Artifacts:Retention";

    /// <summary>Cron schedule of the recurring retention job (API host, default queue); every 15 minutes by default.</summary>
    public string Schedule { get; set; } = "*/15 * * * *";

    /// <summary>Epoch checkpoints kept per job, newest first (OpenAI keeps three).</summary>
    public int EpochCheckpointsKept { get; set; } = 3;

    /// <summary>
    /// An unreferenced artifact is collected only once it was last stored longer ago than this: an upload's bundle
    /// exists a moment before the row that references it (checkpoint, result, file) is committed.
    /// </summary>
    public TimeSpan CollectUnreferencedAfter { get; set; } = TimeSpan.FromHours(1);

    /// <summary>A staging upload older than this was killed mid-way (a live one finishes or fails well within it).</summary>
    public TimeSpan StagingTimeout { get; set; } = TimeSpan.FromHours(6);
}

/// <summary>What one retention pass removed.</summary>
public sealed record RetentionResult(int CheckpointsPruned, int ResumeStatesReleased, int StagingUploadsRemoved, int ArtifactsCollected);

/// <summary>The recurring job contract (Hangfire serializes the call by interface).</summary>
public interface IArtifactRetentionJob
{
    /// <summary>One retention pass; idempotent, so a repeated or concurrent delivery is harmless.</summary>
    Task<RetentionResult> RunAsync(CancellationToken cancellationToken);
}

/// <summary>
/// Keeps PostgreSQL from growing without bound. Each pass, in order:
/// <list type="number">
/// <item>keeps the newest <see cref="ArtifactRetentionOptions.EpochCheckpointsKept"/> epoch checkpoints of every job,
/// and any older one that a job not finished yet starts from (<c>model: …:ckpt-step-N</c>);</item>
/// <item>for finished jobs (nothing resumes them), drops the resume-only checkpoints and releases the resume
/// states of the epoch checkpoints kept: what remains are the last epochs' model weights and the final weights;</item>
/// <item>removes <c>staging-</c> uploads a killed process left behind;</item>
/// <item>collects every artifact that no file, base model, job result, checkpoint or running job references any more
/// (with its chunks).</item>
/// </list>
/// </summary>
public sealed class ArtifactRetentionJob(
    IDbContextFactory<FineTuneDbContext> contexts,
    IOptions<ArtifactRetentionOptions> options,
    TimeProvider time,
    ILogger<ArtifactRetentionJob> logger) : IArtifactRetentionJob
{
    public const string RecurringJobId = "artifact-retention";

    private static readonly JobStatus[] Finished = [JobStatus.Succeeded, JobStatus.Failed, JobStatus.Cancelled];

    public async Task<RetentionResult> RunAsync(CancellationToken cancellationToken)
    {
        var settings = options.Value;
        var now = time.GetUtcNow().UtcDateTime;
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);

        var keep = settings.EpochCheckpointsKept;
        // A checkpoint that an unfinished job continues training from stays, however old: the job loads its weights when it starts.
        var pruned = await db.JobCheckpoints
            .Where(c => c.WeightsArtifactSha256 != null
                        && db.JobCheckpoints.Count(newer => newer.JobId == c.JobId && newer.WeightsArtifactSha256 != null
                                                            && newer.StepNumber > c.StepNumber) >= keep
                        && !db.Jobs.Any(child => child.Model == c.FineTunedModelCheckpoint && !Finished.Contains(child.Status)))
            .ExecuteDeleteAsync(cancellationToken);
        pruned += await db.JobCheckpoints
            .Where(c => c.WeightsArtifactSha256 == null && db.Jobs.Any(j => j.Id == c.JobId && Finished.Contains(j.Status)))
            .ExecuteDeleteAsync(cancellationToken);
        var released = await db.JobCheckpoints
            .Where(c => c.ResumeStateSha256 != null && db.Jobs.Any(j => j.Id == c.JobId && Finished.Contains(j.Status)))
            .ExecuteUpdateAsync(set => set.SetProperty(c => c.ResumeStateSha256, (string?)null), cancellationToken);

        // Chunks go with their artifact row (ON DELETE CASCADE).
        var staleStaging = now - settings.StagingTimeout;
        var staging = await db.Artifacts
            .Where(a => a.Sha256.StartsWith(PostgresArtifactStore.StagingPrefix) && a.CreatedAt < staleStaging)
            .ExecuteDeleteAsync(cancellationToken);

        var collectable = now - settings.CollectUnreferencedAfter;
        var collected = await Unreferenced(db)
            .Where(a => a.CreatedAt < collectable && !a.Sha256.StartsWith(PostgresArtifactStore.StagingPrefix))
            .ExecuteDeleteAsync(cancellationToken);

        var result = new RetentionResult(pruned, released, staging, collected);
        if (result != new RetentionResult(0, 0, 0, 0))
            logger.LogInformation(
                "Artifact retention: {Pruned} checkpoints pruned, {Released} resume states released, {Staging} stale uploads removed, {Collected} unreferenced artifacts collected",
                pruned, released, staging, collected);
        return result;
    }

    /// <summary>
    /// Artifacts nothing references: live files (and deleted ones an unfinished job or evaluation still reads), base
    /// models, the results and adapters of jobs whose model is not deleted (a deleted model's weights stay while an
    /// unfinished job trains on it), and every checkpoint bundle. Safety reports only record which weights they scored.
    /// </summary>
    internal static IQueryable<Artifact> Unreferenced(FineTuneDbContext db) =>
        db.Artifacts.Where(a =>
            !db.Files.Any(f => f.Sha256 == a.Sha256 && (f.DeletedAt == null
                || db.Jobs.Any(j => (j.TrainingFileId == f.Id || j.ValidationFileId == f.Id) && !Finished.Contains(j.Status))
                || db.SafetyEvaluations.Any(e => e.PromptFileId == f.Id
                                                 && e.Status != SafetyEvaluationStatus.Succeeded && e.Status != SafetyEvaluationStatus.Failed)))
            && !db.BaseModels.Any(m => m.ArtifactSha256 == a.Sha256)
            && !db.Jobs.Any(j => (j.ResultArtifactSha256 == a.Sha256 || j.AdapterArtifactSha256 == a.Sha256)
                                 && (j.ModelDeletedAt == null
                                     || db.Jobs.Any(child => child.Model == j.FineTunedModel && !Finished.Contains(child.Status))))
            && !db.JobCheckpoints.Any(c => c.ResumeStateSha256 == a.Sha256 || c.WeightsArtifactSha256 == a.Sha256
                                           || c.AdapterArtifactSha256 == a.Sha256));
}
