using System.Text.Json;
using System.Text.Json.Nodes;

namespace FineTuneService.Core.Domain;

/// <summary>Where in a job's life a model was evaluated; the values are stored and shown as they are.</summary>
public static class SafetyStages
{
    public const string Base = "base";
    /// <summary>The root base model of a continued-training job (whose <see cref="Base"/> is its parent model); sequence -1.</summary>
    public const string RootBase = "root_base";
    public const string AfterTraining = "after_training";

    /// <summary>Stage name after a post-training step, e.g. "after_antidote", "after_merge".</summary>
    public static string After(string postStep) => "after_" + postStep;
}

/// <summary>
/// One safety evaluation of a job's model at one stage (base, after training, after each post-step). The summary
/// columns are for queries; <see cref="Report"/> is the whole evaluation report (per-category scores, samples, errors).
/// </summary>
public sealed class SafetyReport
{
    public Guid Id { get; init; } = Guid.NewGuid();
    public required string JobId { get; init; }
    /// <summary>See <see cref="SafetyStages"/>.</summary>
    public required string Stage { get; init; }
    /// <summary>Evaluation order within the job (0 = base).</summary>
    public int Sequence { get; init; }
    /// <summary>Hash of the evaluated weights' bundle; null when they were not stored as an artifact (base, intermediate stages).</summary>
    public string? ArtifactSha256 { get; set; }
    /// <summary>Name of the primary judge, e.g. "classifier", "keyword", "external:…".</summary>
    public required string Judge { get; init; }
    public double? HarmfulScore { get; init; }
    /// <summary>HS by every judge that answered, keyed by its registered name ("classifier", "keyword", "external").</summary>
    public required JudgeHarmfulScores JudgeScores { get; init; }
    public double? OverRefusalRate { get; init; }
    public double? FineTuneAccuracy { get; init; }
    /// <summary>The full evaluation report (snake_case JSON).</summary>
    public required JsonObject Report { get; init; }
    public DateTime CreatedAt { get; init; }
}

/// <summary>
/// Cached evaluation of a base model: evaluated once per (model, weights hash, evaluation settings) and reused by
/// every job on that base.
/// </summary>
public sealed class BaseModelSafetyScore
{
    public Guid Id { get; init; } = Guid.NewGuid();
    public required string BaseModelId { get; init; }
    public required string ArtifactSha256 { get; init; }
    /// <summary>Hash of the evaluation settings (prompt sets, sizes, generation, judges); other settings, other row.</summary>
    public required string ConfigFingerprint { get; init; }
    public required string Judge { get; init; }
    public double? HarmfulScore { get; init; }
    /// <summary>HS by every judge that answered, keyed by its registered name ("classifier", "keyword", "external").</summary>
    public required JudgeHarmfulScores JudgeScores { get; init; }
    public double? OverRefusalRate { get; init; }
    public required JsonObject Report { get; init; }
    public DateTime CreatedAt { get; init; }
}

/// <summary>
/// Harmful scores keyed by judge name: one entry per judge that answered, so a new judge needs no new column. Stored as
/// one jsonb map per row (the scores are always read with their row, never joined or filtered on by judge).
/// </summary>
public sealed class JudgeHarmfulScores(IReadOnlyDictionary<string, double> scores) : IEquatable<JudgeHarmfulScores>
{
    public static JudgeHarmfulScores None { get; } = new(new Dictionary<string, double>());

    public IReadOnlyDictionary<string, double> Scores { get; } = new SortedDictionary<string, double>(
        scores.ToDictionary(), StringComparer.Ordinal);

    /// <summary>The judge's HS; null when it did not run or did not answer.</summary>
    public double? Of(string judgeName) => Scores.TryGetValue(judgeName, out var score) ? score : null;

    public string ToJsonString() => JsonSerializer.Serialize(Scores);

    public static JudgeHarmfulScores FromJson(string json) =>
        new(JsonSerializer.Deserialize<Dictionary<string, double>>(json) ?? []);

    public bool Equals(JudgeHarmfulScores? other) => other is not null && ToJsonString() == other.ToJsonString();
    public override bool Equals(object? obj) => Equals(obj as JudgeHarmfulScores);
    public override int GetHashCode() => ToJsonString().GetHashCode();
}
