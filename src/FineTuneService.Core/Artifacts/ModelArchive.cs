using System.Formats.Tar;

namespace FineTuneService.Core.Artifacts;

/// <summary>
/// The download of a model: its Hugging Face folder as a tar, streamed from the stored bundle entry by entry
/// (nothing is held in memory beyond one copy buffer), with extra files such as the safety report appended.
/// </summary>
public static class ModelArchive
{
    /// <summary>The folder a LoRA model's bundle keeps its PEFT adapter in; downloaded on its own with <c>?format=adapter</c>.</summary>
    public const string AdapterFolder = "adapter";

    /// <summary>
    /// Copies the regular files of the bundle <paramref name="bundle"/> (a <see cref="Models.ModelBundle"/> tar)
    /// except <see cref="AdapterFolder"/>, then <paramref name="extraFiles"/> (which replace bundle files of the same name).
    /// </summary>
    public static async Task WriteAsync(Stream bundle, IReadOnlyDictionary<string, byte[]> extraFiles, Stream destination,
        CancellationToken cancellationToken)
    {
        var archive = new ForwardTarWriter(destination);
        await using (var reader = new TarReader(bundle, leaveOpen: true))
        {
            while (await reader.GetNextEntryAsync(copyData: false, cancellationToken) is { } entry)
            {
                if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile)) continue;
                if (entry.Name.StartsWith(AdapterFolder + "/", StringComparison.Ordinal) || extraFiles.ContainsKey(entry.Name)) continue;
                await archive.WriteEntryAsync(entry.Name, entry.Length, entry.DataStream ?? Stream.Null, cancellationToken);
            }
        }
        foreach (var (name, content) in extraFiles.OrderBy(f => f.Key, StringComparer.Ordinal))
            await archive.WriteEntryAsync(name, content, cancellationToken);
        await archive.FinishAsync(cancellationToken);
    }
}
