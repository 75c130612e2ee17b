using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Safety;
using FineTuneService.Datasets;
using FineTuneService.Datasets.Tokenization;
using FineTuneService.Ml.Evaluation;
using FineTuneService.Ml.Evaluation.Evaluators;
using FineTuneService.Ml.Models;
using FineTuneService.Worker.Jobs;
using FineTuneService.Worker.Models;
using FineTuneService.Worker.Training;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using static TorchSharp.torch;

namespace FineTuneService.Worker.Safety;

/// <summary>
/// Starts a job's safety evaluation before training: resolves the tenant's effective policy and scores the base
/// model — once per (base model, weights, evaluation settings), kept in <c>base_model_safety_scores</c>
/// (<see cref="BaseModelScoreCache"/>; usually scored at registration already) — plus,
/// per job, its FA on the job's validation examples, which depend on the job.
/// </summary>
public sealed class JobSafetyPipeline(
    SafetyEvaluationResources resources,
    ModelSafetyEvaluator evaluator,
    BaseModelScoreCache scoreCache,
    IDbContextFactory<FineTuneDbContext> contexts,
    WorkerPrecision precision,
    ILogger<JobSafetyPipeline> logger)
{
    /// <param name="root">
    /// The root base model (with its local folder) when the job continues training a fine-tuned model or checkpoint:
    /// scored too (cached like any base model), and the gate compares the final model with it as well as with the parent.
    /// </param>
    /// <returns>The run to evaluate the trained stages with, or null when evaluation is disabled.</returns>
    public async Task<JobSafetyRun?> StartAsync(FineTuningJob job, ResolvedModel model, IReadOnlyList<ChatExample> validation,
        string device, JobLease lease, CancellationToken cancellationToken, ResolvedModel? root = null)
    {
        if (!resources.Options.Enabled) return null;

        EffectiveSafetyPolicy policy;
        await using (var db = await contexts.CreateDbContextAsync(cancellationToken))
            policy = await SafetyPolicyResolver.ResolveAsync(db, job.TenantId, cancellationToken);

        var plan = SafetyStagePlan.For(job.Safety, continuesTraining: root is not null);
        var accuracy = AccuracyFor(validation);
        var (report, cached) = await ScoreAsync(model, root is null ? "base model" : "parent model", device, accuracy, lease, cancellationToken);
        var baseStage = new StageReport(SafetyStages.Base, report);
        RootStageReport? rootStage = null;
        if (plan.ScoresRootBase)
        {
            // FA is the job's measure of its task, compared with the parent; the root is scored for harm and refusals.
            var (rootReport, rootCached) = await ScoreAsync(root!, $"root base model {root!.Id}", device, null, lease, cancellationToken);
            rootStage = new RootStageReport(root.Id, root.Sha256, new StageReport(SafetyStages.RootBase, rootReport), rootCached);
        }

        var run = new JobSafetyRun(evaluator, resources, lease, plan, policy, baseStage, cached, model.Sha256, accuracy, cancellationToken)
        {
            Root = rootStage,
        };
        if (rootStage is not null)
            lease.Post(run.Describe(rootStage.Stage), rootStage.Stage.Report.Errors.Count > 0 ? EventLevel.Warn : EventLevel.Info);
        lease.Post(run.Describe(baseStage), report.Errors.Count > 0 ? EventLevel.Warn : EventLevel.Info);
        return run;
    }

    /// <summary>
    /// The report of a model the job is compared with: cached per (model, weights, evaluation settings), evaluated
    /// (and cached) otherwise; FA on <paramref name="accuracy"/> is measured afresh, as it depends on the job.
    /// </summary>
    private async Task<(EvaluationReport Report, bool Cached)> ScoreAsync(ResolvedModel model, string title, string device,
        AccuracySet? accuracy, JobLease lease, CancellationToken cancellationToken)
    {
        var cached = await scoreCache.FindAsync(model.Id, model.Sha256, cancellationToken);
        if (cached is null) lease.Post($"Safety evaluation of the {title}: scoring harmful prompts and XSTest (not scored yet on this worker's settings)");
        await lease.FlushAsync(cancellationToken);

        var report = cached;
        if (report is null || accuracy is not null)
            report = EvaluateBase(model.Folder, device, report, accuracy, cancellationToken);
        if (cached is null) await scoreCache.StoreAsync(model.Id, model.Sha256, report, cancellationToken);
        return (report, cached is not null);
    }

    /// <summary>Loads the base weights on the job's device and scores them: everything, or FA only over a cached report.</summary>
    private EvaluationReport EvaluateBase(string folder, string device, EvaluationReport? cached, AccuracySet? accuracy,
        CancellationToken cancellationToken)
    {
        var tokenizer = TokenizerFolder.Load(folder);
        var torchDevice = TrainingDevice.Resolve(device, logger);
        using var model = HuggingFaceCheckpoint.Load(folder, precision.Evaluation(torchDevice), torchDevice).Model;
        if (cached is null) return evaluator.Evaluate(model, tokenizer, accuracy, cancellationToken);

        var fa = evaluator.EvaluateAccuracy(model, tokenizer, accuracy!, cancellationToken);
        return cached with
        {
            FineTuneAccuracy = fa.Accuracy,
            FineTuneAccuracyMatcher = fa.Matcher,
            Samples = [.. cached.Samples, .. fa.Samples],
        };
    }

    /// <summary>FA examples: the job's validation file, else the configured task split, else none.</summary>
    private AccuracySet? AccuracyFor(IReadOnlyList<ChatExample> validation)
    {
        var limit = resources.Options.AccuracyExamples;
        if (limit == 0) return null;
        var fromValidation = AccuracyExample.FromChats(validation).Take(limit).ToList();
        if (fromValidation.Count > 0) return new AccuracySet(fromValidation, new ExactLabelMatcher(), "validation_file");
        return resources.TaskSplit is { } task ? new AccuracySet(task.Examples, task.Matcher, resources.Options.AccuracyTask!) : null;
    }
}
