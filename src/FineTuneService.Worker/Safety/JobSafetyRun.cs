using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Safety;
using FineTuneService.Datasets;
using FineTuneService.Ml.Evaluation;
using FineTuneService.Ml.Evaluation.Judges;
using FineTuneService.Ml.Models;
using FineTuneService.Ml.Training;
using FineTuneService.Worker.Jobs;
using FineTuneService.Contracts.Judges;

namespace FineTuneService.Worker.Safety;

/// <summary>An evaluated stage of a job's model.</summary>
public sealed record StageReport(string Stage, EvaluationReport Report);

/// <summary>The root base model's report (<see cref="SafetyStages.RootBase"/>) of a continued-training job: its id and weights, and whether the scores were cached.</summary>
public sealed record RootStageReport(string Model, string Sha256, StageReport Stage, bool Cached);

/// <summary>
/// One job's safety evaluation: the base model's report (cached or fresh), then a report per stage of the trained
/// weights (after training, after each post-step), each announced as a job event; finally the gate decision and the
/// rows that record it all. Stage evaluation runs synchronously on the training thread.
/// </summary>
public sealed class JobSafetyRun
{
    private readonly ModelSafetyEvaluator _evaluator;
    private readonly SafetyEvaluationResources _resources;
    private readonly JobLease _lease;
    private readonly AccuracySet? _accuracy;
    private readonly CancellationToken _cancellationToken;
    private readonly List<StageReport> _stages = [];

    internal JobSafetyRun(ModelSafetyEvaluator evaluator, SafetyEvaluationResources resources, JobLease lease, SafetyStagePlan plan,
        EffectiveSafetyPolicy policy, StageReport baseReport, bool baseCached, string baseSha256, AccuracySet? accuracy,
        CancellationToken cancellationToken)
    {
        _evaluator = evaluator;
        _resources = resources;
        _lease = lease;
        Plan = plan;
        Policy = policy;
        Base = baseReport;
        BaseCached = baseCached;
        BaseSha256 = baseSha256;
        _accuracy = accuracy;
        _cancellationToken = cancellationToken;
    }

    /// <summary>The stages this job is scored at; the trainer's stages must come in its order.</summary>
    public SafetyStagePlan Plan { get; }
    public EffectiveSafetyPolicy Policy { get; }
    public StageReport Base { get; }
    public bool BaseCached { get; }
    public string BaseSha256 { get; }
    public IReadOnlyList<StageReport> Stages => _stages;

    /// <summary>
    /// The root base model's report when the job continues training a fine-tuned model or checkpoint (then
    /// <see cref="Base"/> is that parent): the gate compares the final model with both.
    /// </summary>
    public RootStageReport? Root { get; init; }

    /// <summary>Name of the judge the gate reads, as it appears in reports.</summary>
    public string GateJudge => _resources.ReportNameOf(Policy.Judge);

    /// <summary>Stage name stored for a trainer stage ("training" → "after_training", "merge" → "after_merge").</summary>
    public static string StageName(string trainerStage) =>
        trainerStage == TrainingStages.Training ? SafetyStages.AfterTraining : SafetyStages.After(trainerStage);

    /// <summary>Scores the trained weights at <paramref name="trainerStage"/> and posts the figures as an event.</summary>
    /// <exception cref="InvalidOperationException">The stage is not the next in <see cref="Plan"/>: the plan and the trainer disagree.</exception>
    public void EvaluateStage(string trainerStage, DecoderLM model, ITextTokenizer tokenizer)
    {
        var name = StageName(trainerStage);
        var expected = Plan.TrainedStages.Count > _stages.Count ? Plan.TrainedStages[_stages.Count] : null;
        if (name != expected)
            throw new InvalidOperationException($"The trainer reached stage {name}, but the job's stage plan expects {expected ?? "no further stage"} "
                                                + $"({string.Join(", ", Plan.TrainedStages)}).");
        var stage = new StageReport(name, _evaluator.Evaluate(model, tokenizer, _accuracy, _cancellationToken));
        _stages.Add(stage);
        _lease.Post(Describe(stage), stage.Report.Errors.Count > 0 ? EventLevel.Warn : EventLevel.Info);
    }

    /// <summary>The gate on the last stage against the base.</summary>
    public SafetyGateDecision Decide()
    {
        var final = _stages.Count > 0 ? _stages[^1] : throw new InvalidOperationException("No stage of the trained model was evaluated.");
        var detail = UnavailableDetail(Base.Report) ?? UnavailableDetail(final.Report);
        var refusals = RefusalRetention.FromKeywordHarmfulScores(final.Report.KeywordHarmfulScore, Base.Report.KeywordHarmfulScore);
        var decision = SafetyGate.Decide(Policy, GateJudge, GateScore(final.Report), GateScore(Base.Report), refusals, detail);
        return Root is null ? decision : SafetyGate.AgainstRoot(decision, Root.Model, GateScore(Root.Stage.Report), UnavailableDetail(Root.Stage.Report));
    }

    /// <summary>
    /// Adds the stage reports and, for a held or failed model, a gate decision row to <paramref name="db"/>, and puts
    /// the summary into <c>job.SafetyScores</c>. The final stage is linked to <paramref name="resultSha256"/>.
    /// </summary>
    public void Record(FineTuneDbContext db, FineTuningJob job, string resultSha256, SafetyGateDecision decision, DateTime now)
    {
        var rows = new List<SafetyReport> { Row(job.Id, Base, 0, BaseSha256, now) };
        for (var i = 0; i < _stages.Count; i++)
            rows.Add(Row(job.Id, _stages[i], i + 1, i == _stages.Count - 1 ? resultSha256 : null, now));
        db.SafetyReports.AddRange(rows);
        // The root before the base (sequence -1): queries that read sequence 0 as the base and the highest as the final stage stay right.
        var rootRow = Root is null ? null : Row(job.Id, Root.Stage, -1, Root.Sha256, now);
        if (rootRow is not null) db.SafetyReports.Add(rootRow);
        if (decision.Outcome != SafetyGateOutcome.Passed)
            db.SafetyDecisions.Add(new SafetyDecision
            {
                JobId = job.Id,
                TenantId = job.TenantId,
                Decision = decision.Outcome == SafetyGateOutcome.Held ? SafetyDecisionKind.Hold : SafetyDecisionKind.Fail,
                Actor = "gate",
                Reason = decision.Message,
                Details = decision.ToJsonObject(),
                CreatedAt = now,
            });
        job.SafetyScores = Summary(decision, rows, rootRow);
    }

    private JsonObject Summary(SafetyGateDecision decision, List<SafetyReport> rows, SafetyReport? rootRow)
    {
        var stages = _stages.Select((s, i) => StageSummary(s, rows[i + 1].Id)).ToList();
        var judges = new JsonObject
        {
            [ClassifierHarmJudge.JudgeName] = "the project's trained harm classifier over (prompt, response)",
            [KeywordHarmJudge.JudgeName] = "fallback only: counts every response without a refusal keyword as harmful",
        };
        if (_resources.HasExternalJudge) judges[_resources.ExternalJudgeName] = "external judge endpoint";
        var baseSummary = StageSummary(Base, rows[0].Id);
        baseSummary["cached"] = BaseCached;
        JsonObject? rootSummary = null;
        if (Root is not null)
        {
            rootSummary = StageSummary(Root.Stage, rootRow!.Id);
            rootSummary["model"] = Root.Model;
            rootSummary["cached"] = Root.Cached;
        }
        return new JsonObject
        {
            ["judge"] = GateJudge,
            ["judges"] = judges,
            ["harmful_prompt_set"] = Base.Report.HarmfulPromptSet,
            ["base"] = baseSummary,
            // Continued training: the root aligned base model the gate also compares with (null when the job trains a base model).
            ["root"] = rootSummary,
            ["stages"] = new JsonArray(stages.Select(s => (JsonNode)s).ToArray()),
            ["final"] = stages.Count > 0 ? stages[^1].DeepClone() : null,
            ["gate"] = decision.ToJsonObject(),
        };
    }

    private JsonObject StageSummary(StageReport stage, Guid reportId)
    {
        var report = stage.Report;
        var primary = report.Judges.FirstOrDefault(j => j.Judge == GateJudge);
        var keep = _resources.Options.SamplesInJob;
        return new JsonObject
        {
            ["stage"] = stage.Stage,
            ["report_id"] = reportId.ToString(),
            ["judge"] = GateJudge,
            ["harmful_score"] = GateScore(report),
            ["classifier_harmful_score"] = report.ClassifierHarmfulScore,
            ["keyword_harmful_score"] = report.KeywordHarmfulScore,
            ["external_harmful_score"] = report.ExternalHarmfulScore,
            ["refusal_rate"] = RefusalRetention.RateFromKeywordHarmfulScore(report.KeywordHarmfulScore),
            ["over_refusal_rate"] = report.OverRefusalRate,
            ["fine_tune_accuracy"] = report.FineTuneAccuracy,
            ["fine_tune_accuracy_source"] = report.FineTuneAccuracy is null ? null : _accuracy?.Source,
            ["per_category"] = primary?.PerCategory is { } perCategory ? JsonSerializer.SerializeToNode(perCategory, EvaluationReport.JsonOptions) : null,
            ["errors"] = JsonSerializer.SerializeToNode(report.Errors, EvaluationReport.JsonOptions),
            ["samples"] = JsonSerializer.SerializeToNode(report.Samples.Where(s => s.Kind == "harmful").Take(keep), EvaluationReport.JsonOptions),
        };
    }

    private SafetyReport Row(string jobId, StageReport stage, int sequence, string? sha256, DateTime now) => new()
    {
        JobId = jobId,
        Stage = stage.Stage,
        Sequence = sequence,
        ArtifactSha256 = sha256,
        Judge = GateJudge,
        HarmfulScore = GateScore(stage.Report),
        JudgeScores = new JudgeHarmfulScores(stage.Report.HarmfulScores),
        OverRefusalRate = stage.Report.OverRefusalRate,
        FineTuneAccuracy = stage.Report.FineTuneAccuracy,
        Report = stage.Report.ToJsonObject(),
        CreatedAt = now,
    };

    /// <summary>The harmful score by the gate's judge; null when that judge did not answer (or is not configured).</summary>
    public double? GateScore(EvaluationReport report) => report.HarmfulScoreOf(Policy.Judge);

    private string? UnavailableDetail(EvaluationReport report)
    {
        if (GateScore(report) is not null) return null;
        if (Policy.Judge == SafetyJudges.External.Name && !_resources.HasExternalJudge)
            return $"no external judge is configured ({SafetyEvaluationOptions.ExternalJudgeSectionName}:BaseAddress)";
        return report.Errors.FirstOrDefault(e => e.Judge == GateJudge)?.Message;
    }

    /// <summary>"Safety evaluation after training: HS 35.0% (classifier), keyword HS 90.0%, base 2.0%, over-refusal 10.0%, FA 50.0%".</summary>
    internal string Describe(StageReport stage)
    {
        var report = stage.Report;
        var title = stage.Stage switch
        {
            SafetyStages.Base when Root is not null => "Safety evaluation of the parent model",
            SafetyStages.Base => "Safety evaluation of the base model",
            SafetyStages.RootBase => $"Safety evaluation of the root base model {Root?.Model}",
            _ => $"Safety evaluation {stage.Stage.Replace('_', ' ')}",
        };
        var parts = new List<string> { $"HS {Percent(GateScore(report))} ({GateJudge})" };
        if (GateJudge != ClassifierHarmJudge.JudgeName) parts.Add($"classifier HS {Percent(report.ClassifierHarmfulScore)}");
        if (GateJudge != KeywordHarmJudge.JudgeName) parts.Add($"keyword HS {Percent(report.KeywordHarmfulScore)} (fallback judge)");
        parts.Add($"refusals {Percent(RefusalRetention.RateFromKeywordHarmfulScore(report.KeywordHarmfulScore))}");
        var isTrained = stage.Stage is not (SafetyStages.Base or SafetyStages.RootBase);
        if (isTrained) parts.Add($"{(Root is null ? "base" : "parent")} {Percent(GateScore(Base.Report))}");
        if (isTrained && Root is not null) parts.Add($"root {Percent(GateScore(Root.Stage.Report))}");
        if (report.OverRefusalRate is not null) parts.Add($"over-refusal {Percent(report.OverRefusalRate)}");
        if (report.FineTuneAccuracy is not null) parts.Add($"FA {Percent(report.FineTuneAccuracy)}");
        var text = $"{title}: {string.Join(", ", parts)}";
        if ((stage.Stage == SafetyStages.Base && BaseCached) || (stage.Stage == SafetyStages.RootBase && Root!.Cached)) text += " (cached)";
        if (report.Errors.Count > 0) text += "; " + string.Join("; ", report.Errors.Select(e => $"{e.Code}: {e.Message}"));
        return text;
    }

    private static string Percent(double? value) =>
        value is { } v ? v.ToString("0.0", CultureInfo.InvariantCulture) + "%" : "unavailable";
}
