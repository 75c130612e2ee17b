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

    internal DatasetLimits EffectiveLimits => Validation with { MaxFileBytes = MaxUploadBytes };
}
