using System.Text.Json.Nodes;
using FineTuneService.Core.Data;
using FineTuneService.Core.Models;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using FineTuneService.Worker.Jobs;
using FineTuneService.Ml.Safety.Strategies.FrozenLayers;

namespace FineTuneService.Worker.Models;

/// <summary>
/// Local copies of base models, one folder per bundle SHA-256 under <see cref="WorkerOptions.ModelCacheDirectory"/>.
/// A bundle is downloaded once per machine, verified, and published by an atomic rename, so concurrent device
/// servers and later jobs share it and a half-written folder is never used.
/// </summary>
public sealed class BaseModelCache(
    IDbContextFactory<FineTuneDbContext> contexts,
    ArtifactTransfer transfer,
    IOptions<WorkerOptions> options,
    ILogger<BaseModelCache> logger)
{
    private static readonly SemaphoreSlim DownloadLock = new(1, 1);

    /// <summary>
    /// The local folder of model <paramref name="modelId"/> as <see cref="ModelAccess"/> grants it to
    /// <paramref name="tenantId"/> (null: the admin): a base model, one of the tenant's fine-tuned models or one of
    /// their checkpoints, with its root base model (<see cref="ModelAccess.LineageAsync"/>) and that root's located
    /// safety layers. Any other id fails the job with <c>model_not_found</c>.
    /// </summary>
    public async Task<ResolvedModel> ResolveAsync(string modelId, string? tenantId, CancellationToken cancellationToken)
    {
        ModelLineage? lineage;
        RootBaseModel? root = null;
        JsonObject? located = null;
        await using (var db = await contexts.CreateDbContextAsync(cancellationToken))
        {
            lineage = await ModelAccess.LineageAsync(db, tenantId, modelId, cancellationToken);
            if (lineage is not null)
            {
                var row = await db.BaseModels.AsNoTracking().Where(m => m.Id == lineage.RootModel)
                    .Select(m => new { m.Id, m.ArtifactSha256, m.SafetyLayers }).SingleOrDefaultAsync(cancellationToken);
                if (row is not null) (root, located) = (new RootBaseModel(row.Id, row.ArtifactSha256), row.SafetyLayers);
            }
        }
        if (lineage is null) throw new JobFailureException("model_not_found", $"The model '{modelId}' does not exist.", "model");
        var layers = located is null ? null : SafetyLayerLocation.FromJson(located.ToJsonString());
        var weights = lineage.Parent.WeightsSha256;
        return new ResolvedModel(modelId, weights, await GetFolderAsync(weights, cancellationToken), layers, root);
    }

    /// <summary>The cached folder of bundle <paramref name="sha256"/>, downloading it first when missing.</summary>
    public async Task<string> GetFolderAsync(string sha256, CancellationToken cancellationToken)
    {
        var root = Path.Combine(options.Value.ModelCacheDirectory, "models");
        var folder = Path.Combine(root, sha256);
        if (Directory.Exists(folder)) return folder;

        await DownloadLock.WaitAsync(cancellationToken);
        try
        {
            if (Directory.Exists(folder)) return folder;
            Directory.CreateDirectory(root);
            var partial = Path.Combine(root, $".{sha256}.{Guid.NewGuid():N}.partial");
            try
            {
                await transfer.DownloadFolderAsync(sha256, partial, cancellationToken);
                Directory.Move(partial, folder);
            }
            catch
            {
                if (Directory.Exists(partial)) Directory.Delete(partial, recursive: true);
                throw;
            }
            logger.LogInformation("Base model bundle {Sha256} cached at {Folder}", sha256, folder);
            return folder;
        }
        catch (IOException) when (Directory.Exists(folder))
        {
            return folder; // another process published the same bundle first
        }
        finally
        {
            DownloadLock.Release();
        }
    }
}

/// <summary>
/// A model ready to load: its id, bundle hash and local Hugging Face folder, the safety layers the locator found on
/// its root base model (else a fine-tuned model's folder carries its base's <c>safety_layers.json</c>), and that root
/// base model (null only when it was removed since).
/// </summary>
public sealed record ResolvedModel(string Id, string Sha256, string Folder, SafetyLayerLocation? SafetyLayers = null, RootBaseModel? Root = null)
{
    /// <summary>True when the model is a fine-tuned model or checkpoint whose root base is known: the gate then compares with the root too.</summary>
    public bool HasDistinctRoot => Root is not null && Root.Id != Id;
}

/// <summary>The base model at the start of a model's chain of jobs: its id and bundle hash (fetch the folder with <see cref="BaseModelCache.GetFolderAsync"/>).</summary>
public sealed record RootBaseModel(string Id, string Sha256);
