using System.Globalization;
using System.Text;
using FineTuneService.Core.Domain;
using FineTuneService.Ml.Training;
using FineTuneService.Worker.Safety;

namespace FineTuneService.Worker.Results;

/// <summary>A safety stage's scores as the metrics file shows them (percentages, 0–100, as in the reports).</summary>
/// <param name="Stage">"base", "after_training", "after_antidote", …</param>
/// <param name="Step">The step whose weights were scored: 0 for the base model, the last step for the trained stages.</param>
public sealed record StageScores(string Stage, int Step, double? HarmfulScore, double? KeywordHarmfulScore, double? OverRefusalRate,
    double? FineTuneAccuracy)
{
    /// <summary>The base and every trained stage of <paramref name="run"/>, by the gate's judge; none without a safety run.</summary>
    public static IReadOnlyList<StageScores> Of(JobSafetyRun? run, int steps) => run is null ? [] :
    [
        Of(run, run.Base, 0),
        .. run.Stages.Select(stage => Of(run, stage, steps)),
    ];

    private static StageScores Of(JobSafetyRun run, StageReport stage, int step) => new(stage.Stage, step, run.GateScore(stage.Report),
        stage.Report.KeywordHarmfulScore, stage.Report.OverRefusalRate, stage.Report.FineTuneAccuracy);
}

/// <summary>
/// The job's metrics file (purpose <c>fine-tune-results</c>, as OpenAI's <c>step_metrics.csv</c>): one row per step
/// with <c>step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy</c> (validation columns empty where not
/// measured; accuracies are token accuracies), then one row per safety stage, whose training columns are empty and whose
/// extra columns carry the stage and its scores. A DPO run (its steps carry a reward margin) has three more step columns
/// after the validation ones: <c>reward_margin,reward_accuracy,valid_reward_accuracy</c>.
/// </summary>
public static class MetricsCsv
{
    public const string FileName = "step_metrics.csv";

    private const string StepColumns = "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy";
    private const string PreferenceColumns = "reward_margin,reward_accuracy,valid_reward_accuracy";
    private const string StageColumns = "stage,harmful_score,keyword_harmful_score,over_refusal_rate,fine_tune_accuracy";

    /// <summary>Header of a supervised job's file.</summary>
    public const string Header = StepColumns + "," + StageColumns;

    /// <summary>Header of a DPO job's file.</summary>
    public const string PreferenceHeader = StepColumns + "," + PreferenceColumns + "," + StageColumns;

    public static byte[] Write(IEnumerable<StepMetrics> steps, IEnumerable<StageScores> stages)
    {
        var rows = steps.ToList();
        var preference = rows.Any(s => s.RewardMargin is not null);
        var csv = new StringBuilder(preference ? PreferenceHeader : Header).Append('\n');
        string[] noPreference = preference ? ["", "", ""] : [];
        foreach (var s in rows)
            csv.AppendJoin(',', [s.Step.ToString(CultureInfo.InvariantCulture), Number(s.TrainLoss), Number(s.TrainTokenAccuracy),
                Number(s.ValidationLoss), Number(s.ValidationTokenAccuracy),
                .. preference ? [Number(s.RewardMargin), Number(s.RewardAccuracy), Number(s.ValidationRewardAccuracy)] : noPreference,
                "", "", "", "", ""]).Append('\n');
        foreach (var s in stages)
            csv.AppendJoin(',', [s.Step.ToString(CultureInfo.InvariantCulture), "", "", "", "", .. noPreference, s.Stage, Number(s.HarmfulScore),
                Number(s.KeywordHarmfulScore), Number(s.OverRefusalRate), Number(s.FineTuneAccuracy)]).Append('\n');
        return Encoding.UTF8.GetBytes(csv.ToString());
    }

    /// <summary>The file row of a job's metrics file whose content is stored as <paramref name="sha256"/>.</summary>
    public static StoredFile FileRow(string tenantId, string sha256, long bytes, DateTime now) => new()
    {
        Id = Ids.File(),
        TenantId = tenantId,
        Filename = FileName,
        Purpose = FilePurposes.FineTuneResults,
        Bytes = bytes,
        Sha256 = sha256,
        Status = FileStatus.Processed,
        CreatedAt = now,
    };

    private static string Number(double? value) =>
        value is { } v && double.IsFinite(v) ? v.ToString("0.######", CultureInfo.InvariantCulture) : "";
}
