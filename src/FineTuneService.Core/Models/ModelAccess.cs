using System.Text.Json.Nodes;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using Microsoft.EntityFrameworkCore;

namespace FineTuneService.Core.Models;

/// <summary>What a usable model is: a shared base model, a job's fine-tuned model, or one of its epoch checkpoints.</summary>
public enum ModelKind { Base, FineTuned, Checkpoint }

/// <summary>
/// A model the caller may use (chat, download, evaluate, train on), with where its weights are.
/// </summary>
/// <param name="Id">The model id as clients send it: <c>safetune-tiny</c>, <c>ft:…:ftjob-…</c> or <c>ft:…:ftjob-…:ckpt-step-N</c>.</param>
/// <param name="Kind">Base, fine-tuned or checkpoint.</param>
/// <param name="OwnedBy">OpenAI's <c>owned_by</c>: <see cref="ModelAccess.SystemOwner"/> for base models, else the tenant id.</param>
/// <param name="CreatedAt">UTC: base model import, job finish, or checkpoint time.</param>
/// <param name="WeightsSha256">
/// Artifact hash of a <see cref="ModelBundle"/> tar of a Hugging Face folder: <c>config.json</c>,
/// <c>model.safetensors</c>, <c>generation_config.json</c> and the tokenizer files with the chat template. Load it as
/// any model folder (on the worker: <c>BaseModelCache.GetFolderAsync(WeightsSha256)</c>). A LoRA job's bundle holds
/// the merged weights (plus an <c>adapter/</c> folder).
/// </param>
/// <param name="AdapterSha256">Bundle of the PEFT adapter folder (<c>adapter_config.json</c>, <c>adapter_model.safetensors</c>) of a LoRA-trained model; null otherwise.</param>
/// <param name="JobId">The fine-tuning job that produced a fine-tuned or checkpoint model; null for base models.</param>
/// <param name="CheckpointStep">The step of a checkpoint model; null otherwise.</param>
/// <param name="Hardening">A hardened base model's lineage (<see cref="BaseModel.Hardening"/>); null otherwise.</param>
public sealed record UsableModel(
    string Id,
    ModelKind Kind,
    string OwnedBy,
    DateTime CreatedAt,
    string WeightsSha256,
    string? AdapterSha256 = null,
    string? JobId = null,
    int? CheckpointStep = null,
    JsonObject? Hardening = null);

/// <summary>
/// Where a model a new job starts from comes from: the model itself (base, fine-tuned or checkpoint) and the root
/// base model its chain of jobs began with (itself for a base model). The tokenizer, chat template, located safety
/// layers and the gate's root comparison all come from <see cref="RootModel"/>.
/// </summary>
/// <param name="Parent">The model the new job trains from.</param>
/// <param name="RootModel">Id of the base model at the start of the chain.</param>
/// <param name="Depth">How many jobs lie between the root and the new job's weights: 0 for a base model, 1 for a fine-tune of a base, …</param>
public sealed record ModelLineage(UsableModel Parent, string RootModel, int Depth)
{
    /// <summary>The job that produced the parent model (fine-tuned or checkpoint); null for a base model.</summary>
    public string? ParentJobId => Parent.JobId;
}

/// <summary>
/// The one answer to "which models may this caller use, and what are their weights", for every route that takes a
/// model (models list and retrieve, download, delete, chat completions, safety evaluations, continued training) and
/// for the worker loading one.
/// <list type="bullet">
/// <item>Base models: every caller.</item>
/// <item>A tenant's fine-tuned models: its succeeded jobs' models, unless held for safety review, rejected or deleted.</item>
/// <item>Their epoch checkpoints (<c>{fine_tuned_model}:ckpt-step-N</c>), from that checkpoint's weights, under the same rule.</item>
/// </list>
/// Everything else (another tenant's model, a failed job's weights, a held, rejected or deleted model) is reported
/// exactly like an id that never existed: null. The admin (<c>tenantId: null</c>) may use every tenant's models,
/// held and rejected ones included (to evaluate them before deciding), but never deleted ones.
/// </summary>
public static class ModelAccess
{
    /// <summary>OpenAI's <c>owned_by</c> of base models.</summary>
    public const string SystemOwner = "system";

    /// <summary>The model <paramref name="modelId"/> if <paramref name="tenantId"/> (null: the admin) may use it; otherwise null.</summary>
    public static async Task<UsableModel?> FindAsync(FineTuneDbContext db, string? tenantId, string modelId, CancellationToken cancellationToken)
    {
        var baseModel = await db.BaseModels.AsNoTracking().Where(m => m.Id == modelId)
            .Select(m => new UsableModel(m.Id, ModelKind.Base, SystemOwner, m.CreatedAt, m.ArtifactSha256, null, null, null, m.Hardening))
            .SingleOrDefaultAsync(cancellationToken);
        if (baseModel is not null) return baseModel;
        if (!modelId.StartsWith("ft:", StringComparison.Ordinal)) return null;

        return await FineTunedModels(UsableJobs(db, tenantId).Where(j => j.FineTunedModel == modelId)).FirstOrDefaultAsync(cancellationToken)
               ?? await CheckpointModels(db, tenantId, db.JobCheckpoints.Where(c => c.FineTunedModelCheckpoint == modelId)).FirstOrDefaultAsync(cancellationToken);
    }

    /// <summary>
    /// The model <paramref name="modelId"/> and its root base model, if <paramref name="tenantId"/> (null: the admin)
    /// may use it; otherwise null, as <see cref="FindAsync"/>. The root is read from the producing job's recorded
    /// lineage (a job created before lineage was recorded: the base its model name carries).
    /// </summary>
    public static async Task<ModelLineage?> LineageAsync(FineTuneDbContext db, string? tenantId, string modelId, CancellationToken cancellationToken)
    {
        var parent = await FindAsync(db, tenantId, modelId, cancellationToken);
        if (parent is null) return null;
        if (parent.Kind == ModelKind.Base) return new ModelLineage(parent, parent.Id, 0);
        var producer = await db.Jobs.AsNoTracking().Where(j => j.Id == parent.JobId)
            .Select(j => new { j.Model, j.RootModel, j.LineageDepth }).SingleAsync(cancellationToken);
        return new ModelLineage(parent, producer.RootModel ?? RootOfName(producer.Model), producer.LineageDepth + 1);
    }

    /// <summary>The base a model id names: a base model's own id, or the base segment of <c>ft:{base}:…</c>.</summary>
    public static string RootOfName(string modelId) =>
        modelId.StartsWith("ft:", StringComparison.Ordinal) ? modelId.Split(':')[1] : modelId;

    /// <summary>Every model the tenant may use: base models by id, then its fine-tuned models newest first, each followed by its checkpoints (latest step first).</summary>
    public static async Task<IReadOnlyList<UsableModel>> ListAsync(FineTuneDbContext db, string tenantId, CancellationToken cancellationToken)
    {
        var baseModels = await db.BaseModels.AsNoTracking().OrderBy(m => m.Id)
            .Select(m => new UsableModel(m.Id, ModelKind.Base, SystemOwner, m.CreatedAt, m.ArtifactSha256, null, null, null, m.Hardening))
            .ToListAsync(cancellationToken);
        var fineTuned = await FineTunedModels(UsableJobs(db, tenantId).OrderByDescending(j => j.FinishedAt ?? j.CreatedAt))
            .ToListAsync(cancellationToken);
        var checkpoints = (await CheckpointModels(db, tenantId, db.JobCheckpoints).ToListAsync(cancellationToken)).ToLookup(c => c.JobId);
        return
        [
            .. baseModels,
            .. fineTuned.SelectMany(m => checkpoints[m.JobId].OrderByDescending(c => c.CheckpointStep).Prepend(m)),
        ];
    }

    /// <summary>
    /// The jobs whose fine-tuned model <paramref name="tenantId"/> (null: the admin) may use. Compose with further
    /// conditions, e.g. <c>UsableJobs(db, tenant).AnyAsync(j => j.FineTunedModel == id)</c>.
    /// </summary>
    public static IQueryable<FineTuningJob> UsableJobs(FineTuneDbContext db, string? tenantId)
    {
        var jobs = db.Jobs.AsNoTracking().Where(j => j.Status == JobStatus.Succeeded && j.FineTunedModel != null
                                                     && j.ResultArtifactSha256 != null && j.ModelDeletedAt == null);
        return tenantId is null
            ? jobs
            : jobs.Where(j => j.TenantId == tenantId && j.Review != ReviewState.Held && j.Review != ReviewState.Rejected);
    }

    // Filters come before the projection: EF cannot translate conditions on a positional record's properties.
    private static IQueryable<UsableModel> FineTunedModels(IQueryable<FineTuningJob> jobs) =>
        jobs.Select(j => new UsableModel(j.FineTunedModel!, ModelKind.FineTuned, j.TenantId,
            j.FinishedAt ?? j.CreatedAt, j.ResultArtifactSha256!, j.AdapterArtifactSha256, j.Id, null));

    private static IQueryable<UsableModel> CheckpointModels(FineTuneDbContext db, string? tenantId, IQueryable<JobCheckpoint> checkpoints) =>
        from c in checkpoints.AsNoTracking()
        join j in UsableJobs(db, tenantId) on c.JobId equals j.Id
        where c.WeightsArtifactSha256 != null
        select new UsableModel(c.FineTunedModelCheckpoint, ModelKind.Checkpoint, j.TenantId, c.CreatedAt,
            c.WeightsArtifactSha256!, c.AdapterArtifactSha256, j.Id, c.StepNumber);
}
