using System.Security.Cryptography;

namespace FineTuneService.Research.Benchmarks;

/// <summary>
/// A private copy of a benchmark's base model folder, so a folder changed mid-run cannot mix two models into one
/// results file; deleted on dispose.
/// </summary>
internal sealed class BaseModelSnapshot : IDisposable
{
    private BaseModelSnapshot(string folder, string weightsSha256)
    {
        Folder = folder;
        WeightsSha256 = weightsSha256;
    }

    public string Folder { get; }

    /// <summary>SHA-256 of the copied <c>model.safetensors</c>: part of every results fingerprint.</summary>
    public string WeightsSha256 { get; }

    public static BaseModelSnapshot Take(string folder)
    {
        var weights = Path.Combine(folder, "model.safetensors");
        if (!File.Exists(weights))
            throw new FileNotFoundException($"{folder} is not a Hugging Face model folder (no model.safetensors).", weights);
        var snapshot = Path.Combine(Path.GetTempPath(), "fts-safety-bench", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(snapshot);
        foreach (var file in Directory.EnumerateFiles(folder)) File.Copy(file, Path.Combine(snapshot, Path.GetFileName(file)));
        using var stream = File.OpenRead(Path.Combine(snapshot, "model.safetensors"));
        return new BaseModelSnapshot(snapshot, Convert.ToHexStringLower(SHA256.HashData(stream)));
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Folder, recursive: true);
        }
        catch (IOException)
        {
            // A memory-mapped weights file still open; the temp cleaner takes it.
        }
    }
}
