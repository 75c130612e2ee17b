using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using FineTuneService.Contracts.Judges;

namespace FineTuneService.Ml.Evaluation;

/// <summary>
/// Result of a safety evaluation, stored as JSON (snake_case) with the job and shown in <c>job.safety.scores</c>.
/// All rates are percentages (0–100). A score is null when it was not measured or its judge was unavailable —
/// never 0 in that case; <see cref="Errors"/> then says why (e.g. <c>judge_unavailable</c>).
/// </summary>
public sealed record EvaluationReport
{
    /// <summary>The judge whose verdicts give <see cref="HarmfulScore"/> (the first judge configured).</summary>
    public string? Judge { get; init; }

    /// <summary>Prompt set the harmful score was measured on.</summary>
    public string? HarmfulPromptSet { get; init; }

    /// <summary>HS: % of harmful prompts whose greedy response the primary judge called harmful.</summary>
    public double? HarmfulScore { get; init; }

    // The three judges' summary fields of the wire format, derived from Judges (read-only: ignored when reading a report).
    public double? KeywordHarmfulScore => HarmfulScoreOf(SafetyJudges.Keyword.Name);
    public double? ClassifierHarmfulScore => HarmfulScoreOf(SafetyJudges.Classifier.Name);
    public double? ExternalHarmfulScore => HarmfulScoreOf(SafetyJudges.External.Name);

    /// <summary>Every judge's score and per-category breakdown (null score plus error when unavailable).</summary>
    public IReadOnlyList<JudgeScore> Judges { get; init; } = [];

    /// <summary>HS by the judge registered as <paramref name="judgeName"/> ("external" also finds "external:llama-guard-3");
    /// null when that judge did not run or did not answer.</summary>
    public double? HarmfulScoreOf(string judgeName) =>
        Judges.FirstOrDefault(j => HarmJudgeDescriptor.NameOf(j.Judge) == judgeName)?.HarmfulScore;

    /// <summary>Every measured judge's HS keyed by its registered name (judges that did not answer are left out).</summary>
    [JsonIgnore]
    public IReadOnlyDictionary<string, double> HarmfulScores =>
        Judges.Where(j => j.HarmfulScore is not null)
            .GroupBy(j => HarmJudgeDescriptor.NameOf(j.Judge))
            .ToDictionary(g => g.Key, g => g.First().HarmfulScore!.Value);

    /// <summary>Primary judge's HS per prompt category, when the set has categories.</summary>
    public IReadOnlyDictionary<string, CategoryScore>? PerCategory { get; init; }

    /// <summary>% of safe (XSTest) prompts the model refused, by keyword refusal detection.</summary>
    public double? OverRefusalRate { get; init; }
    public IReadOnlyDictionary<string, CategoryScore>? OverRefusalPerCategory { get; init; }

    /// <summary>FA: % exact-match answers on the task's evaluation split.</summary>
    public double? FineTuneAccuracy { get; init; }
    public string? FineTuneAccuracyMatcher { get; init; }

    public IReadOnlyList<EvaluationSample> Samples { get; init; } = [];
    public IReadOnlyList<EvaluationError> Errors { get; init; } = [];

    public static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DictionaryKeyPolicy = null,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        WriteIndented = false,
    };

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>The report as a JSON object (e.g. for a jsonb column such as the job's safety scores).</summary>
    public JsonObject ToJsonObject() => JsonSerializer.SerializeToNode(this, JsonOptions)!.AsObject();

    public static EvaluationReport FromJson(string json) =>
        JsonSerializer.Deserialize<EvaluationReport>(json, JsonOptions) ?? throw new JsonException("empty evaluation report");
}

/// <summary>One judge's harmful score over a prompt set.</summary>
public sealed record JudgeScore(string Judge, double? HarmfulScore, int Judged, int Harmful,
    IReadOnlyDictionary<string, CategoryScore>? PerCategory, string? Error);

/// <summary>Rate (percent) of <paramref name="Hits"/> out of <paramref name="Total"/> within one category.</summary>
public sealed record CategoryScore(int Total, int Hits, double Rate);

/// <summary>A kept response with each judge's verdict, for inspection in the UI.</summary>
public sealed record EvaluationSample(string Kind, string Prompt, string Response, string? Category,
    IReadOnlyDictionary<string, bool?> Verdicts);

/// <summary>A problem that made part of the evaluation unmeasurable. <paramref name="Code"/> e.g. "judge_unavailable".</summary>
public sealed record EvaluationError(string Code, string Message, string? Judge = null);
