using System.Text.Json;
using System.Text.Json.Nodes;
using FineTuneService.Datasets.Jsonl;

namespace FineTuneService.Core.Domain;

/// <summary>The file purposes this service stores, as OpenAI names them.</summary>
public static class FilePurposes
{
    /// <summary>Training or validation data (chat JSONL).</summary>
    public const string FineTune = "fine-tune";

    /// <summary>Prompt sets for <c>POST /v1/safety/evaluations</c> (OpenAI's purpose for evaluation data).</summary>
    public const string Evals = "evals";

    /// <summary>A job's result files (the metrics CSV), written by the service, never uploaded.</summary>
    public const string FineTuneResults = "fine-tune-results";
}

/// <summary>
/// A file's state: OpenAI's uploaded, processed and error, plus <see cref="AwaitingScreening"/> (structurally valid,
/// not yet judged by harm screening), which reads "uploaded" on the wire. The legal changes are in <c>FileStateMachine</c>.
/// </summary>
public enum FileStatus { Uploaded, AwaitingScreening, Processed, Error }

/// <summary>An uploaded file (OpenAI "file" object). Its bytes live in the artifact store under <see cref="Sha256"/>.</summary>
public sealed class StoredFile : ICreatedRow
{
    public required string Id { get; init; }
    public required string TenantId { get; init; }
    public required string Filename { get; init; }
    public required string Purpose { get; init; }
    public long Bytes { get; set; }
    public required string Sha256 { get; set; }
    public FileStatus Status { get; set; } = FileStatus.Uploaded;
    /// <summary>Human-readable reason when <see cref="Status"/> is Error.</summary>
    public string? StatusDetails { get; set; }
    /// <summary>Validation outcome: format, example and token counts, and line-numbered errors.</summary>
    public JsonObject? ValidationReport { get; set; }
    public DateTime CreatedAt { get; init; }

    /// <summary>Validation found OpenAI preference rows (a dpo training file), not chat rows.</summary>
    public bool HoldsPreferencePairs => ValidationReport?["format"]?.GetValue<string>() == PreferenceFormat;

    /// <summary>The validation report's name for preference rows, as the Datasets enum writes it.</summary>
    private static readonly string PreferenceFormat = JsonSerializer.SerializeToElement(DatasetFormat.Preference).GetString()!;
    public DateTime? DeletedAt { get; set; }
}
