using System.Text.Json.Nodes;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Jobs;
using FineTuneService.Datasets.Jsonl;
using FineTuneService.Datasets.Tokenization;
using FineTuneService.Ml.Evaluation;
using FineTuneService.Ml.Evaluation.Evaluators;
using FineTuneService.Ml.Evaluation.Judges;
using FineTuneService.Ml.Evaluation.PromptSets;
using FineTuneService.Ml.Models;
using FineTuneService.Worker.Hosting;
using FineTuneService.Worker.Jobs;
using FineTuneService.Worker.Models;
using FineTuneService.Worker.Training;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using static TorchSharp.torch;
using FineTuneService.Contracts.Judges;

namespace FineTuneService.Worker.Safety;

/// <summary>
/// Runs a stand-alone safety evaluation (<c>POST /v1/safety/evaluations</c>) on the device of the gpu-queue server
/// that dequeued it: resolves the model (a base model from the cache, a fine-tuned one from its job's result bundle),
/// loads the prompt set (the uploaded file, or the shipped held-out harmful prompts), generates greedily and judges
/// the answers with the requested judge first. It claims the evaluation and beats a heartbeat while it runs
/// (<see cref="RunLease"/>), so a dead worker's evaluation is recovered like a training job
/// (<see cref="StaleJobMonitor"/>); a finished or live-held evaluation is left alone, an interrupted one starts over.
/// </summary>
public sealed class SafetyEvaluationRunner(
    CurrentWorkerSlot slot,
    IDbContextFactory<FineTuneDbContext> contexts,
    BaseModelCache models,
    ArtifactTransfer transfer,
    SafetyEvaluationResources resources,
    StateMachine states,
    RunLeases leases,
    IOptions<WorkerOptions> options,
    TimeProvider clock,
    WorkerPrecision precision,
    ILogger<SafetyEvaluationRunner> logger) : ISafetyEvaluationJob
{
    public async Task RunAsync(string evaluationId, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var workerId = slot.Slot.WorkerId;
        var claim = EvaluationStateMachine.Claim(workerId, Now, Now - options.Value.StaleTimeout, options.Value.MaxAttempts);
        if (!await states.TryAsync(db, evaluationId, claim, cancellationToken))
        {
            logger.LogInformation("Safety evaluation {EvaluationId} not claimed: finished, gone or held by a live worker", evaluationId);
            return;
        }
        var evaluation = await db.SafetyEvaluations.AsNoTracking().SingleAsync(e => e.Id == evaluationId, cancellationToken);
        logger.LogInformation("Safety evaluation {EvaluationId} claimed by {WorkerId} (attempt {Attempt})", evaluationId, workerId, evaluation.Attempts);

        await using var lease = leases.StartEvaluation(evaluationId, workerId);
        using var running = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, lease.Lost);
        Transition<SafetyEvaluation> outcome;
        try
        {
            var report = await EvaluateAsync(db, evaluation, running.Token);
            outcome = EvaluationStateMachine.Succeed(workerId, report, Now);
            logger.LogInformation("Safety evaluation {EvaluationId} of {Model} succeeded: HS {HarmfulScore}",
                evaluation.Id, evaluation.Model, report["harmful_score"]);
        }
        catch (Exception) when (lease.Lost.IsCancellationRequested)
        {
            logger.LogWarning("Safety evaluation {EvaluationId}: another worker took over; this run ends without writing", evaluationId);
            return;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Host shutdown: Hangfire re-queues the delivery, which starts the evaluation over.
            await states.TryAsync(db, evaluationId, EvaluationStateMachine.Release(workerId), CancellationToken.None);
            throw;
        }
        catch (Exception e)
        {
            logger.LogError(e, "Safety evaluation {EvaluationId} failed", evaluation.Id);
            outcome = EvaluationStateMachine.Fail(workerId, e is JobFailureException failure
                ? failure.ToError()
                : JobFailureException.Error("evaluation_error", $"The safety evaluation failed: {e.Message}", null), Now);
        }
        await states.TryAsync(db, evaluationId, outcome, CancellationToken.None);
    }

    private DateTime Now => clock.GetUtcNow().UtcDateTime;

    private async Task<JsonObject> EvaluateAsync(FineTuneDbContext db, SafetyEvaluation evaluation, CancellationToken cancellationToken)
    {
        var settings = evaluation.Settings;
        var prompts = await PromptsAsync(db, evaluation, cancellationToken);
        if (settings.MaxPrompts is { } max) prompts = prompts with { Prompts = prompts.Prompts.Take(max).ToList() };
        var safePrompts = settings.MeasuresOverRefusal
            ? resources.SafePrompts ?? throw new JobFailureException("over_refusal_unavailable",
                "Over-refusal is not measured on this worker (SafetyEvaluation:SafePrompts is 0).", "include")
            : null;
        var judges = Judges(evaluation.Judge);

        var resolved = await models.ResolveAsync(evaluation.Model, evaluation.TenantId, cancellationToken);
        var tokenizer = TokenizerFolder.Load(resolved.Folder);
        var device = TrainingDevice.Resolve(slot.Slot.Device, logger);
        using var model = HuggingFaceCheckpoint.Load(resolved.Folder, precision.Evaluation(device), device).Model;
        // Half the context at most, so even a small model keeps room for the prompt.
        var maxNewTokens = Math.Min(settings.MaxNewTokens, model.Config.MaxPositionEmbeddings / 2);
        var request = new SafetyEvaluationRequest(prompts)
        {
            SafePrompts = safePrompts,
            Generation = new GenerationSettings(maxNewTokens),
            SamplesPerPart = settings.SamplesPerPart,
        };
        var generator = new ModelResponseGenerator(model, tokenizer, batchSize: resources.Options.BatchSize);
        var report = await new SafetyEvaluator(generator, judges, resources.RefusalKeywords).EvaluateAsync(request, cancellationToken);

        var json = report.ToJsonObject();
        json["model_sha256"] = resolved.Sha256;
        json["prompt_count"] = prompts.Prompts.Count;
        json["max_new_tokens"] = maxNewTokens;
        return json;
    }

    /// <summary>The uploaded prompt file (read again: it passed the same check when the evaluation was created), or the shipped set.</summary>
    private async Task<PromptSet> PromptsAsync(FineTuneDbContext db, SafetyEvaluation evaluation, CancellationToken cancellationToken)
    {
        if (evaluation.PromptFileId is null) return resources.HarmfulPrompts;
        var file = await db.Files.AsNoTracking().SingleOrDefaultAsync(f => f.Id == evaluation.PromptFileId, cancellationToken)
            ?? throw new JobFailureException("file_not_found", $"The prompt_file {evaluation.PromptFileId} no longer exists.", "prompt_file");
        var report = await transfer.ReadAsync(file.Sha256, (stream, token) => PromptJsonl.ReadAsync(stream, cancellationToken: token), cancellationToken);
        try
        {
            return PromptSetLoader.ToPromptSet(report, $"file:{file.Filename}");
        }
        catch (InvalidDataException e)
        {
            throw new JobFailureException("invalid_prompt_file", $"The prompt_file {file.Id} is not a valid prompt set: {e.Message}", "prompt_file", e);
        }
    }

    /// <summary>Every judge this worker has, the requested one first (its score is the report's harmful_score).</summary>
    private IReadOnlyList<IHarmJudge> Judges(string name)
    {
        var judges = resources.Judges();
        var primary = judges.FirstOrDefault(j => HarmJudgeDescriptor.NameOf(j.Name) == name)
            ?? throw new JobFailureException(JudgeUnavailableException.ErrorCode, name == SafetyJudges.External.Name
                ? $"No external judge is configured on the worker ({SafetyEvaluationOptions.ExternalJudgeSectionName}:BaseAddress)."
                : $"No {name} judge is configured on the worker.", "judge");
        return [primary, .. judges.Where(j => j != primary)];
    }
}
