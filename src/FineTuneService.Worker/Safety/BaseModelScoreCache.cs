using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Ml.Evaluation;
using FineTuneService.Ml.Evaluation.Evaluators;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace FineTuneService.Worker.Safety;

/// <summary>
/// <c>base_model_safety_scores</c>: a base model's report, kept once per (model, weights, this worker's evaluation
/// settings) without the job-specific FA. Written by the first of the registration scoring
/// (<see cref="BaseModelScoringJob"/>), a hardening run and a job's base stage (<see cref="JobSafetyPipeline"/>), read
/// by all three.
/// </summary>
public sealed class BaseModelScoreCache(
    SafetyEvaluationResources resources,
    IDbContextFactory<FineTuneDbContext> contexts,
    ILogger<BaseModelScoreCache> logger)
{
    /// <summary>Longest model id the key column holds; a longer (fine-tuned or checkpoint) parent is not cached.</summary>
    public const int ModelIdMaxLength = 128;

    public async Task<EvaluationReport?> FindAsync(string modelId, string sha256, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var cached = await db.BaseModelSafetyScores.AsNoTracking().SingleOrDefaultAsync(
            s => s.BaseModelId == modelId && s.ArtifactSha256 == sha256 && s.ConfigFingerprint == resources.Fingerprint,
            cancellationToken);
        return cached is null ? null : EvaluationReport.FromJson(cached.Report.ToJsonString());
    }

    /// <summary>
    /// Stores the report without its job-specific FA. A report with an unavailable judge is not cached, so the next
    /// job asks the judge again; a concurrent worker that stored the same key first wins. False when nothing was stored.
    /// </summary>
    public async Task<bool> StoreAsync(string modelId, string sha256, EvaluationReport report, CancellationToken cancellationToken)
    {
        if (report.Errors.Count > 0 || modelId.Length > ModelIdMaxLength) return false;
        var shared = report with
        {
            FineTuneAccuracy = null,
            FineTuneAccuracyMatcher = null,
            Samples = report.Samples.Where(s => s.Kind != FineTuneAccuracyEvaluator.SampleKind).ToList(),
        };
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        db.BaseModelSafetyScores.Add(new BaseModelSafetyScore
        {
            BaseModelId = modelId,
            ArtifactSha256 = sha256,
            ConfigFingerprint = resources.Fingerprint,
            Judge = shared.Judge ?? "",
            HarmfulScore = shared.HarmfulScore,
            JudgeScores = new JudgeHarmfulScores(shared.HarmfulScores),
            OverRefusalRate = shared.OverRefusalRate,
            Report = shared.ToJsonObject(),
        });
        try
        {
            await db.SaveChangesAsync(cancellationToken);
            return true;
        }
        catch (DbUpdateException e) when (e.InnerException is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation })
        {
            logger.LogInformation("Base model {Model} safety scores were cached by another worker meanwhile", modelId);
            return false;
        }
    }
}
