using FineTuneService.Core.Data;
using FineTuneService.Core.Jobs;
using FineTuneService.Datasets.Tokenization;
using FineTuneService.Ml.Evaluation;
using FineTuneService.Ml.Models;
using FineTuneService.Worker.Hosting;
using FineTuneService.Worker.Models;
using FineTuneService.Worker.Training;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace FineTuneService.Worker.Safety;

/// <summary>
/// Scores a base model's weights once on a device (harmful score by every judge, refusals, over-refusal; no FA, which
/// depends on a job's task) and caches the report (<see cref="BaseModelScoreCache"/>); weights already scored under
/// this worker's evaluation settings are not scored again.
/// </summary>
public sealed class BaseModelScoring(
    SafetyEvaluationResources resources,
    ModelSafetyEvaluator evaluator,
    BaseModelScoreCache cache,
    WorkerPrecision precision,
    ILogger<BaseModelScoring> logger)
{
    /// <summary>False when safety evaluation is disabled on this worker: nothing is scored.</summary>
    public bool Enabled => resources.Options.Enabled;

    /// <returns>The report, and whether it was cached already; null when evaluation is disabled.</returns>
    public async Task<(EvaluationReport Report, bool Cached)?> ScoreOnceAsync(string modelId, string sha256, string folder, string device,
        CancellationToken cancellationToken)
    {
        if (!Enabled) return null;
        if (await cache.FindAsync(modelId, sha256, cancellationToken) is { } cached) return (cached, true);
        var tokenizer = TokenizerFolder.Load(folder);
        var torchDevice = TrainingDevice.Resolve(device, logger);
        EvaluationReport report;
        using (var model = HuggingFaceCheckpoint.Load(folder, precision.Evaluation(torchDevice), torchDevice).Model)
            report = evaluator.Evaluate(model, tokenizer, accuracy: null, cancellationToken);
        await cache.StoreAsync(modelId, sha256, report, cancellationToken);
        return (report, false);
    }
}

/// <summary>
/// The registration scoring of a base model (<see cref="IBaseModelScoringJob"/>), queued by every import of new
/// weights on the gpu queue. A model gone or re-imported meanwhile is scored as it now is; scores cached already are
/// kept, so repeated deliveries are harmless.
/// </summary>
public sealed class BaseModelScoringJob(
    CurrentWorkerSlot slot,
    IDbContextFactory<FineTuneDbContext> contexts,
    BaseModelCache models,
    BaseModelScoring scoring,
    ILogger<BaseModelScoringJob> logger) : IBaseModelScoringJob
{
    public async Task RunAsync(string baseModelId, CancellationToken cancellationToken)
    {
        if (!scoring.Enabled) return;
        string? sha256;
        await using (var db = await contexts.CreateDbContextAsync(cancellationToken))
            sha256 = await db.BaseModels.AsNoTracking().Where(m => m.Id == baseModelId).Select(m => m.ArtifactSha256).SingleOrDefaultAsync(cancellationToken);
        if (sha256 is null) return;
        var folder = await models.GetFolderAsync(sha256, cancellationToken);
        var scored = await scoring.ScoreOnceAsync(baseModelId, sha256, folder, slot.Slot.Device, cancellationToken);
        if (scored is { Cached: false, Report: var report })
            logger.LogInformation("Base model {Model} scored at registration: HS {HarmfulScore} ({Judge}), over-refusal {OverRefusal}",
                baseModelId, report.HarmfulScore, report.Judge, report.OverRefusalRate);
    }
}
