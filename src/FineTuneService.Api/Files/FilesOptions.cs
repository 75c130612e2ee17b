using FineTuneService.Datasets.Jsonl;

namespace FineTuneService.Api.Files;

/// <summary>Upload and validation limits: section "Files".</summary>
public sealed record FilesOptions
{
    public const string Section = "Files";

    /// <summary>Largest accepted upload in bytes; larger uploads are cut off with 413 while streaming.</summary>
    public long MaxUploadBytes { get; set; } = 512L * 1024 * 1024;

    /// <summary>Line, token and example limits of the dataset validator (MaxFileBytes follows MaxUploadBytes).</summary>
    public DatasetLimits Validation { get; set; } = new();

    /// <summary>
    /// Screen structurally valid training files for harmful rows (worker host, <c>screening</c> queue) before they
    /// are processed. Off only for an API that runs without a worker (the file would wait forever otherwise).
    /// </summary>
    public bool ScreenTrainingData { get; set; } = true;

    /// <summary>Most prompts in a prompt-set file (purpose evals) and so in one safety evaluation.</summary>
    public int MaxPrompts { get; set; } = 10_000;

    internal DatasetLimits EffectiveLimits => Validation with { MaxFileBytes = MaxUploadBytes };
}
