using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using FineTuneService.Contracts;
using FineTuneService.Contracts.Safety.Hardening;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Jobs;
using FineTuneService.Core.Models;
using FineTuneService.Core.Safety;
using FineTuneService.Datasets.Corpus;
using FineTuneService.Ml.Safety.Hardening;
using FineTuneService.Worker.Hosting;
using FineTuneService.Worker.Jobs;
using FineTuneService.Worker.Safety;
using FineTuneService.Worker.Training;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FineTuneService.Worker.Models;

/// <summary>
/// Runs a hardening run (<c>POST /v1/admin/models/{base}/harden</c>) on the device of the gpu-queue server that
/// dequeued it, synchronously on the worker thread like training: hardens the base model's folder
/// (<see cref="ModelFolderHardening"/>, the engine code <c>fts harden</c> runs), registers the new folder as base model
/// <see cref="HardeningRun.HardenedModel"/> with its lineage (artifact in PostgreSQL, like any base model) and scores it
/// once. Progress is posted as the run's events every tenth of the steps. It claims the run and beats a heartbeat
/// (<see cref="RunLease"/>), so a dead worker's run is recovered like an evaluation; a finished or live-held run is
/// left alone, an interrupted one starts over, and one whose model this run already registered only finishes.
/// </summary>
public sealed class HardeningRunner(
    CurrentWorkerSlot slot,
    IDbContextFactory<FineTuneDbContext> contexts,
    BaseModelCache models,
    BaseModelRegistry registry,
    BaseModelScoring scoring,
    StateMachine states,
    RunLeases leases,
    IOptions<WorkerOptions> options,
    TimeProvider clock,
    ILogger<HardeningRunner> logger) : IHardeningJob
{
    /// <summary>Lineage field naming the run that produced a hardened model, so a second delivery recognises its own model.</summary>
    public const string RunField = "run";

    /// <summary>Progress events per run (one every tenth of the steps).</summary>
    private const int ProgressEvents = 10;

    public async Task RunAsync(string runId, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var workerId = slot.Slot.WorkerId;
        var claim = HardeningStateMachine.Claim(workerId, Now, Now - options.Value.StaleTimeout, options.Value.MaxAttempts);
        if (!await states.TryAsync(db, runId, claim, cancellationToken))
        {
            logger.LogInformation("Hardening run {RunId} not claimed: finished, gone or held by a live worker", runId);
            return;
        }
        var run = await db.HardeningRuns.AsNoTracking().SingleAsync(r => r.Id == runId, cancellationToken);
        logger.LogInformation("Hardening run {RunId} claimed by {WorkerId} (attempt {Attempt})", runId, workerId, run.Attempts);

        await using var lease = leases.StartHardening(runId, workerId);
        using var running = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, lease.Lost);
        Transition<HardeningRun> outcome;
        try
        {
            var report = await HardenAsync(run, running.Token);
            outcome = HardeningStateMachine.Succeed(workerId, report, Now);
            await PostAsync(runId, $"Hardening run succeeded: base model {run.HardenedModel} is listed to every tenant", CancellationToken.None);
        }
        catch (Exception) when (lease.Lost.IsCancellationRequested)
        {
            logger.LogWarning("Hardening run {RunId}: another worker took over; this run ends without writing", runId);
            return;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Host shutdown: Hangfire re-queues the delivery, which starts the run over.
            await states.TryAsync(db, runId, HardeningStateMachine.Release(workerId), CancellationToken.None);
            throw;
        }
        catch (Exception e)
        {
            logger.LogError(e, "Hardening run {RunId} failed", runId);
            var error = e is JobFailureException failure
                ? failure.ToError()
                : JobFailureException.Error("hardening_error", $"The hardening failed: {e.Message}", null);
            outcome = HardeningStateMachine.Fail(workerId, error, Now);
            await PostAsync(runId, $"Hardening run failed: {error["message"]}", CancellationToken.None, EventLevel.Error);
        }
        await states.TryAsync(db, runId, outcome, CancellationToken.None);
    }

    private DateTime Now => clock.GetUtcNow().UtcDateTime;

    private async Task<JsonObject> HardenAsync(HardeningRun run, CancellationToken cancellationToken)
    {
        var method = HardeningMethods.Registry.Find(run.Method)
            ?? throw new JobFailureException("invalid_method", $"Hardening method '{run.Method}' is not registered on this worker.", "method");
        IHardeningParams parameters;
        try
        {
            parameters = method.Bind(JsonDocument.Parse(run.Params.ToJsonString()).RootElement);
        }
        catch (ContractViolation e)
        {
            throw new JobFailureException("invalid_request_error", e.Message, e.Param, e);
        }

        BaseModel? source, existing;
        await using (var db = await contexts.CreateDbContextAsync(cancellationToken))
        {
            source = await db.BaseModels.AsNoTracking().SingleOrDefaultAsync(m => m.Id == run.BaseModel, cancellationToken);
            existing = await db.BaseModels.AsNoTracking().SingleOrDefaultAsync(m => m.Id == run.HardenedModel, cancellationToken);
        }
        if (existing is not null && existing.Hardening?[RunField]?.GetValue<string>() != run.Id)
            throw new JobFailureException("model_exists", $"A base model named {run.HardenedModel} exists already; choose another suffix.", "suffix");

        string? work = null;
        try
        {
            string folder;
            if (existing is null)
            {
                if (source is null)
                    throw new JobFailureException("model_not_found", $"The base model {run.BaseModel} no longer exists.", "model");
                var sourceFolder = await models.GetFolderAsync(source.ArtifactSha256, cancellationToken);
                work = Directory.CreateTempSubdirectory("fts-hardening-").FullName;
                folder = Path.Combine(work, run.HardenedModel);
                Harden(run, method, parameters, sourceFolder, folder, cancellationToken);
                await registry.ImportAsync(run.HardenedModel, folder, cancellationToken);
            }
            else
            {
                await PostAsync(run.Id, $"Base model {run.HardenedModel} was registered by this run already (an earlier delivery); finishing", cancellationToken);
                folder = await models.GetFolderAsync(existing.ArtifactSha256, cancellationToken);
            }

            BaseModel registered;
            await using (var db = await contexts.CreateDbContextAsync(cancellationToken))
                registered = await db.BaseModels.AsNoTracking().SingleAsync(m => m.Id == run.HardenedModel, cancellationToken);
            await PostAsync(run.Id, $"Registered base model {registered.Id} (artifact {registered.ArtifactSha256[..12]}…), hardened from {run.BaseModel}", cancellationToken);

            var report = new JsonObject
            {
                ["hardened_model"] = registered.Id,
                ["artifact_sha256"] = registered.ArtifactSha256,
                ["hardening"] = registered.Hardening?["report"]?.DeepClone(),
            };
            if (await ScoreAsync(run.Id, registered, folder, cancellationToken) is { } scores) report["base_scores"] = scores;
            return report;
        }
        finally
        {
            if (work is not null) Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>The method on this worker's device; each tenth of the steps is posted and checks for cancellation.</summary>
    private void Harden(HardeningRun run, HardeningMethodDescriptor method, IHardeningParams parameters, string sourceFolder, string folder,
        CancellationToken cancellationToken)
    {
        void Post(string message, JsonObject? data = null) => PostAsync(run.Id, message, cancellationToken, data: data).GetAwaiter().GetResult();

        var device = TrainingDevice.Resolve(slot.Slot.Device, logger);
        ModelFolderHardening.Harden(sourceFolder, folder, run.BaseModel, method, parameters, new ShippedData(), run.Seed, device,
            progress: message => Post($"{message} on {slot.Slot.Device}"), cancellationToken, onStep: step =>
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (step.Step % Math.Max(1, step.Steps / ProgressEvents) != 0 && step.Step != step.Steps) return;
                Post(string.Create(CultureInfo.InvariantCulture,
                        $"Step {step.Step}/{step.Steps}: alignment loss {step.AlignmentLoss:F4}, harmful-loss drop after one step {step.HarmfulLossDrop:F4}"),
                    new JsonObject
                    {
                        ["step"] = step.Step,
                        ["steps"] = step.Steps,
                        ["alignment_loss"] = step.AlignmentLoss,
                        ["harmful_loss_drop"] = step.HarmfulLossDrop,
                    });
            });

        // The lineage names this run, so a later delivery recognises the registered model as its own.
        var lineage = ModelFolderHardening.ReadLineage(folder)!;
        lineage[RunField] = run.Id;
        File.WriteAllText(Path.Combine(folder, ModelFolderHardening.LineageFile), lineage.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>The new model's base scores, measured once now (the registration's own scoring job then finds them cached).</summary>
    private async Task<JsonObject?> ScoreAsync(string runId, BaseModel model, string folder, CancellationToken cancellationToken)
    {
        if (!scoring.Enabled)
        {
            await PostAsync(runId, "Safety evaluation is disabled on this worker: the new model is not scored", cancellationToken, EventLevel.Warn);
            return null;
        }
        await PostAsync(runId, $"Scoring base model {model.Id}: harmful prompts and XSTest", cancellationToken);
        await scoring.ScoreOnceAsync(model.Id, model.ArtifactSha256, folder, slot.Slot.Device, cancellationToken);
        JsonObject? summary;
        await using (var db = await contexts.CreateDbContextAsync(cancellationToken))
            summary = (await BaseModelScores.LatestAsync(db, [(model.Id, model.ArtifactSha256)], cancellationToken)).GetValueOrDefault(model.Id);
        await PostAsync(runId, summary is null
            ? $"Base model {model.Id} was scored, but a judge was unavailable: its scores are measured again at its first job"
            : string.Create(CultureInfo.InvariantCulture,
                $"Base scores of {model.Id}: HS {summary["harmful_score"]} ({summary["judge"]}), refusals {summary["refusal_rate"]}%, over-refusal {summary["over_refusal_rate"]}%"),
            cancellationToken, summary is null ? EventLevel.Warn : EventLevel.Info);
        return summary;
    }

    private async Task PostAsync(string runId, string message, CancellationToken cancellationToken, EventLevel level = EventLevel.Info,
        JsonObject? data = null)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        db.HardeningRunEvents.Add(new HardeningRunEvent { Id = Ids.HardeningEvent(), RunId = runId, Level = level, Message = message, Data = data });
        await db.SaveChangesAsync(cancellationToken);
    }
}
