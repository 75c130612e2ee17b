using System.Text.Json.Nodes;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Jobs;
using FineTuneService.Core.Models;
using FineTuneService.Datasets.Corpus;
using FineTuneService.Datasets.Tokenization;
using FineTuneService.Ml.Models;
using FineTuneService.Ml.Safety.Strategies.FrozenLayers;
using FineTuneService.Worker.Hosting;
using FineTuneService.Worker.Training;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using static TorchSharp.torch;

namespace FineTuneService.Worker.Models;

/// <summary>
/// Locates a base model's safety layers once, after import, on this server's device (<see cref="DecoderSafetyLayers.LocateShipped"/>
/// with the shipped prompt sets), stores them on the model's row and lets the <c>frozen_layers</c> jobs that wait
/// for them go on. Its progress is posted as events of those jobs. A model whose layers are known, or whose weights
/// changed while it ran (a re-import queues a run of its own), is left alone, so repeated deliveries are harmless.
/// </summary>
public sealed class SafetyLayerLocationJob(
    CurrentWorkerSlot slot,
    IDbContextFactory<FineTuneDbContext> contexts,
    BaseModelCache models,
    JobPromotion promotion,
    TimeProvider clock,
    ILogger<SafetyLayerLocationJob> logger) : ISafetyLayerLocationJob
{
    /// <summary>Longest locator error kept on the model row and in the waiting jobs' errors.</summary>
    private const int MaxErrorLength = 1000;

    public async Task RunAsync(string baseModelId, CancellationToken cancellationToken)
    {
        BaseModel? model;
        await using (var db = await contexts.CreateDbContextAsync(cancellationToken))
            model = await db.BaseModels.AsNoTracking().SingleOrDefaultAsync(m => m.Id == baseModelId, cancellationToken);
        if (model is null) return;
        if (model.SafetyLayersStatus != SafetyLayersStatus.Pending)
        {
            await promotion.PromoteWaitingOnModelAsync(baseModelId, cancellationToken); // a job created meanwhile may still wait
            return;
        }

        await PostAsync(baseModelId, $"Locating the safety layers of base model {baseModelId} on {slot.Slot.Device} ({LocatedSafetyLayers.StrategyName} without a layer range waits for them)", cancellationToken);
        JsonObject? located = null;
        string? error = null;
        try
        {
            var location = await LocateAsync(model, cancellationToken);
            located = JsonNode.Parse(location.ToJson())!.AsObject();
            logger.LogInformation("Safety layers of base model {Model} located: layers {First}..{Last}", baseModelId, location.FirstLayer, location.LastLayer);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw; // host shutdown: Hangfire delivers the job again, which starts over
        }
        catch (Exception e)
        {
            logger.LogWarning(e, "The safety layers of base model {Model} could not be located", baseModelId);
            error = e.Message.Length > MaxErrorLength ? e.Message[..MaxErrorLength] : e.Message;
        }

        bool stored;
        await using (var db = await contexts.CreateDbContextAsync(cancellationToken))
            stored = await StateMachine.ApplyAsync(db, baseModelId, BaseModelStateMachine.SafetyLayersLocated(model.ArtifactSha256, located, error),
                clock.GetUtcNow().UtcDateTime, cancellationToken);
        if (!stored) return; // re-imported meanwhile (its own run follows), or another delivery stored first

        await PostAsync(baseModelId, located is null
            ? $"The safety layers of base model {baseModelId} could not be located: {error}"
            : $"Safety layers of base model {baseModelId} located: layers {located["first_layer"]}..{located["last_layer"]}", cancellationToken,
            located is null ? EventLevel.Error : EventLevel.Info);
        await promotion.PromoteWaitingOnModelAsync(baseModelId, cancellationToken);
    }

    private async Task<SafetyLayerLocation> LocateAsync(BaseModel model, CancellationToken cancellationToken)
    {
        var folder = await models.GetFolderAsync(model.ArtifactSha256, cancellationToken);
        var tokenizer = TokenizerFolder.Load(folder);
        using var loaded = HuggingFaceCheckpoint.Load(folder, ScalarType.Float32, TrainingDevice.Resolve(slot.Slot.Device, logger)).Model;
        // Synchronous on this worker thread, like training; each finished step is posted and checks for shutdown.
        return DecoderSafetyLayers.LocateShipped(loaded, tokenizer, new ShippedData(), progress: step =>
        {
            cancellationToken.ThrowIfCancellationRequested();
            PostAsync(model.Id, $"Locating the safety layers of {model.Id}: {step}", cancellationToken).GetAwaiter().GetResult();
        });
    }

    /// <summary>One event for each job that waits for this model's safety layers.</summary>
    private async Task PostAsync(string baseModelId, string message, CancellationToken cancellationToken, EventLevel level = EventLevel.Info)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var waiting = await db.Jobs.AsNoTracking()
            .Where(j => j.Status == JobStatus.ValidatingFiles && (j.RootModel ?? j.Model) == baseModelId)
            .Select(j => new { j.Id, j.Safety }).ToListAsync(cancellationToken);
        var jobs = waiting.Where(j => LocatedSafetyLayers.AreNeededBy(j.Safety)).Select(j => j.Id).ToList();
        if (jobs.Count == 0) return;
        db.JobEvents.AddRange(jobs.Select(id => JobEvents.Message(id, message, level)));
        await db.SaveChangesAsync(cancellationToken);
    }
}
