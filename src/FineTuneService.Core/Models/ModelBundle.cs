using System.Formats.Tar;

namespace FineTuneService.Core.Models;

/// <summary>
/// A Hugging Face model folder as one tar stream. Packing is deterministic (sorted paths, fixed times and owners), so
/// the same files always give the same bytes and therefore the same artifact hash. Ustar keeps headers free of
/// per-write times; its 255-character path limit is ample for model folders.
/// </summary>
public static class ModelBundle
{
    public static async Task PackAsync(string folder, Stream destination, CancellationToken cancellationToken = default)
    {
        var root = Path.GetFullPath(folder);
        var files = Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
            .Select(path => Path.GetRelativePath(root, path).Replace(Path.DirectorySeparatorChar, '/'))
            .Where(relative => !relative.Split('/').Any(part => part.StartsWith('.')))
            .Order(StringComparer.Ordinal)
            .ToList();

        await using var tar = new TarWriter(destination, TarEntryFormat.Ustar, leaveOpen: true);
        foreach (var relative in files)
        {
            await using var content = File.OpenRead(Path.Combine(root, relative));
            var entry = new UstarTarEntry(TarEntryType.RegularFile, relative)
            {
                DataStream = content,
                ModificationTime = DateTimeOffset.UnixEpoch,
                Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead,
                Uid = 0,
                Gid = 0,
            };
            await tar.WriteEntryAsync(entry, cancellationToken);
        }
    }

    /// <summary>Extracts a bundle into <paramref name="folder"/>; entries that would escape it are refused.</summary>
    public static async Task UnpackAsync(Stream source, string folder, CancellationToken cancellationToken = default)
    {
        var root = Path.GetFullPath(folder);
        Directory.CreateDirectory(root);
        await using var tar = new TarReader(source, leaveOpen: true);
        while (await tar.GetNextEntryAsync(copyData: false, cancellationToken) is { } entry)
        {
            if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile)) continue;
            var target = Path.GetFullPath(Path.Combine(root, entry.Name));
            if (!target.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal))
                throw new InvalidDataException($"Model bundle entry '{entry.Name}' points outside the target folder.");
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            await using var output = File.Create(target);
            if (entry.DataStream is not null) await entry.DataStream.CopyToAsync(output, cancellationToken);
        }
    }
}
