namespace FineTuneService.Datasets.Jsonl;

/// <summary>Limits a training file must respect. Defaults follow OpenAI's fine-tuning rules where they exist.</summary>
public sealed record DatasetLimits
{
    public static DatasetLimits Default { get; } = new();

    /// <summary>Largest accepted file in bytes.</summary>
    public long MaxFileBytes { get; init; } = 512L * 1024 * 1024;

    /// <summary>Most physical lines read; validation stops after this.</summary>
    public int MaxLines { get; init; } = 1_000_000;

    /// <summary>Longest accepted line in bytes; longer lines are skipped (not buffered) and reported.</summary>
    public int MaxLineBytes { get; init; } = 4 * 1024 * 1024;

    /// <summary>Most tokens one rendered example may have (the model's context length).</summary>
    public int MaxTokensPerExample { get; init; } = 4096;

    /// <summary>Fewest valid examples a file must hold (OpenAI: 10).</summary>
    public int MinExamples { get; init; } = 10;

    /// <summary>Errors kept in the report; the total is still counted.</summary>
    public int MaxErrorsReported { get; init; } = 100;

    /// <summary>Whether blank lines are skipped (true) or reported as <c>empty_line</c> errors.</summary>
    public bool AllowEmptyLines { get; init; } = true;
}
