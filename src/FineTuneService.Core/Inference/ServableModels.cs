using System.Text.Json.Nodes;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using Microsoft.EntityFrameworkCore;

namespace FineTuneService.Core.Inference;

public enum ServableModelKind { Base, FineTuned, Checkpoint }

/// <summary>
/// A model a tenant may chat with and where its weights are: <see cref="WeightsSha256"/> is a Hugging Face folder
/// bundle (the base model's, or the job's final weights); a checkpoint model adds the training checkpoint
/// <see cref="CheckpointSha256"/> (its trainable tensors over that folder) and the job's <see cref="Method"/>
/// (LoRA factors need the adapter's settings).
/// </summary>
public sealed record ServableModel(string Id, ServableModelKind Kind, string WeightsSha256, string? CheckpointSha256 = null, JsonObject? Method = null)
{
    /// <summary>Identifies the weights, whatever the model is called: two names for the same weights load once.</summary>
    public string WeightsKey => CheckpointSha256 is null ? WeightsSha256 : $"{WeightsSha256}+{CheckpointSha256}";
}

/// <summary>Which models a tenant may use for inference: every base model, and its own visible fine-tuned models and their checkpoints.</summary>
public static class ServableModels
{
    /// <summary>The tenant's succeeded jobs whose model it may use: not held back or rejected by safety review.</summary>
    public static IQueryable<FineTuningJob> VisibleFineTunedJobs(FineTuneDbContext db, string tenantId) =>
        db.Jobs.AsNoTracking().Where(j => j.TenantId == tenantId && j.Status == JobStatus.Succeeded && j.FineTunedModel != null
                                          && j.Review != ReviewState.Held && j.Review != ReviewState.Rejected);

    /// <summary>The model, or null when it does not exist or the tenant may not use it (the same answer for both).</summary>
    public static async Task<ServableModel?> ResolveAsync(FineTuneDbContext db, string tenantId, string modelId, CancellationToken cancellationToken)
    {
        var baseSha = await db.BaseModels.AsNoTracking().Where(m => m.Id == modelId).Select(m => m.ArtifactSha256).SingleOrDefaultAsync(cancellationToken);
        if (baseSha is not null) return new ServableModel(modelId, ServableModelKind.Base, baseSha);

        var job = await VisibleFineTunedJobs(db, tenantId).Where(j => j.FineTunedModel == modelId)
            .Select(j => new { j.ResultArtifactSha256 }).FirstOrDefaultAsync(cancellationToken);
        if (job?.ResultArtifactSha256 is { } resultSha) return new ServableModel(modelId, ServableModelKind.FineTuned, resultSha);

        var checkpoint = await (
                from c in db.JobCheckpoints.AsNoTracking()
                join j in VisibleFineTunedJobs(db, tenantId) on c.JobId equals j.Id
                where c.FineTunedModelCheckpoint == modelId
                select new { c.ArtifactSha256, j.Model, j.Method })
            .FirstOrDefaultAsync(cancellationToken);
        if (checkpoint is null) return null;
        // The checkpoint's frozen weights are the job's own base: a base model, or the tenant's fine-tuned model it started from.
        var parent = await ResolveAsync(db, tenantId, checkpoint.Model, cancellationToken);
        return parent is { CheckpointSha256: null }
            ? new ServableModel(modelId, ServableModelKind.Checkpoint, parent.WeightsSha256, checkpoint.ArtifactSha256, checkpoint.Method)
            : null;
    }
}
