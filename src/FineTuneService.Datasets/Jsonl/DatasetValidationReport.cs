using System.Text.Json.Serialization;

namespace FineTuneService.Datasets.Jsonl;

/// <summary>Row formats of a fine-tuning JSONL file.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<DatasetFormat>))]
public enum DatasetFormat
{
    [JsonStringEnumMemberName("unknown")] Unknown,

    /// <summary><c>{"messages":[{"role":..,"content":..}]}</c></summary>
    [JsonStringEnumMemberName("chat")] Chat,

    /// <summary><c>{"prompt":..,"completion":..}</c></summary>
    [JsonStringEnumMemberName("prompt_completion")] PromptCompletion,

    /// <summary>
    /// OpenAI's preference (DPO) rows: <c>{"input":{"messages":[..]},"preferred_output":[{"role":"assistant",..}],
    /// "non_preferred_output":[..]}</c>.
    /// </summary>
    [JsonStringEnumMemberName("preference")] Preference,
}

/// <summary>Error codes of <see cref="DatasetIssue"/>, modelled on OpenAI's file validation.</summary>
public static class DatasetErrorCodes
{
    public const string InvalidJson = "invalid_json";
    public const string InvalidEncoding = "invalid_encoding";
    public const string InvalidFormat = "invalid_format";
    public const string MissingRole = "missing_role";
    public const string InvalidRole = "invalid_role";
    public const string MissingContent = "missing_content";
    public const string InvalidContent = "invalid_content";
    public const string InvalidWeight = "invalid_weight";
    public const string UnrecognizedKey = "message_unrecognized_key";
    public const string NoAssistantMessage = "no_assistant_message";
    public const string TooFewExamples = "too_few_examples";
    public const string ExampleTooLong = "example_too_long";
    public const string FileTooLarge = "file_too_large";
    public const string TooManyLines = "too_many_lines";
    public const string EmptyLine = "empty_line";
    public const string LineTooLong = "line_too_long";
    public const string IdenticalOutputs = "identical_outputs";
}

/// <summary>One problem found in a file. <see cref="Line"/> is 1-based, null for file-level problems.</summary>
public sealed record DatasetIssue(string Code, string Message, int? Line = null)
{
    public override string ToString() => Line is null ? $"{Code}: {Message}" : $"line {Line}: {Code}: {Message}";

    /// <summary>"14 error(s): line 3: invalid_json: …; line 7: …; and 9 more": one string for status details and error messages.</summary>
    public static string Summary(int errorCount, IEnumerable<DatasetIssue> errors, int shown = 5)
    {
        var more = errorCount > shown ? $"; and {errorCount - shown} more" : "";
        return $"{errorCount} error(s): {string.Join("; ", errors.Take(shown))}{more}";
    }
}

/// <summary>Token counts per example (rendered through the chat template, special tokens included).</summary>
public sealed record TokenStatistics(int Min, int Max, double Mean, int Median, int P95)
{
    internal static TokenStatistics? From(List<int> counts)
    {
        if (counts.Count == 0)
            return null;
        var sorted = counts.ToArray();
        Array.Sort(sorted);
        int Percentile(double p) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];
        return new TokenStatistics(sorted[0], sorted[^1], Math.Round(sorted.Average(c => (double)c), 2), Percentile(0.5), Percentile(0.95));
    }
}

/// <summary>
/// Result of validating a training file. Serialises with System.Text.Json as-is (enums as snake_case strings).
/// </summary>
public sealed record DatasetValidationReport
{
    public DatasetFormat Format { get; init; }
    public int ExampleCount { get; init; }
    public int LineCount { get; init; }
    public long ByteCount { get; init; }
    public long TotalTokens { get; init; }

    /// <summary>Tokens that count towards the loss (assistant turns with weight 1 and their end-of-turn token).</summary>
    public long TrainableTokens { get; init; }

    public TokenStatistics? TokenStats { get; init; }

    /// <summary>True when no tokenizer was given and counts are a bytes/4 estimate.</summary>
    public bool TokenCountsEstimated { get; init; }

    /// <summary>All errors found, including those beyond <see cref="DatasetLimits.MaxErrorsReported"/>.</summary>
    public int ErrorCount { get; init; }

    /// <summary>The first errors, in file order.</summary>
    public IReadOnlyList<DatasetIssue> Errors { get; init; } = [];

    public bool IsValid => ErrorCount == 0;
}
