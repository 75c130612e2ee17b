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
    /// their checkpoints. Any other id fails the job with <c>model_not_found</c>.
    /// </summary>
    public async Task<ResolvedModel> ResolveAsync(string modelId, string? tenantId, CancellationToken cancellationToken)
    {
        UsableModel? model;
        JsonObject? located = null;
        await using (var db = await contexts.CreateDbContextAsync(cancellationToken))
        {
            model = await ModelAccess.FindAsync(db, tenantId, modelId, cancellationToken);
            if (model?.Kind == ModelKind.Base)
                located = await db.BaseModels.AsNoTracking().Where(m => m.Id == modelId).Select(m => m.SafetyLayers).SingleAsync(cancellationToken);
        }
        if (model is null) throw new JobFailureException("model_not_found", $"The model '{modelId}' does not exist.", "model");
        var layers = located is null ? null : SafetyLayerLocation.FromJson(located.ToJsonString());
        return new ResolvedModel(modelId, model.WeightsSha256, await GetFolderAsync(model.WeightsSha256, cancellationToken), layers);
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
/// A model ready to load: its id, bundle hash and local Hugging Face folder, and for a base model the safety layers
/// the locator found (a fine-tuned model's folder carries its base's <c>safety_layers.json</c> instead).
/// </summary>
public sealed record ResolvedModel(string Id, string Sha256, string Folder, SafetyLayerLocation? SafetyLayers = null);
