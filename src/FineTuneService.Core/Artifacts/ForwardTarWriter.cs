using System.Buffers;
using System.Text;

namespace FineTuneService.Core.Artifacts;

/// <summary>
/// Writes a POSIX ustar archive to a forward-only stream such as an HTTP response: each entry's header, its bytes
/// copied through, zero padding to 512-byte blocks, and two zero blocks at the end. Unlike
/// <see cref="System.Formats.Tar.TarWriter"/>, it never seeks: the size is given with the entry, so content read
/// from an unseekable source (another archive, the chunked artifact store) streams without being buffered.
/// </summary>
public sealed class ForwardTarWriter(Stream destination)
{
    private const int Block = 512;
    private const int CopyBuffer = 81920;

    /// <summary>Sizes up to this fit the header's 11 octal digits; larger ones use the base-256 form GNU tar and Python read.</summary>
    private const long MaxOctalSize = (1L << 33) - 1;

    /// <summary>Writes a regular file entry of exactly <paramref name="length"/> bytes read from <paramref name="content"/>.</summary>
    public async Task WriteEntryAsync(string name, long length, Stream content, CancellationToken cancellationToken)
    {
        await destination.WriteAsync(Header(name, length), cancellationToken);
        var buffer = ArrayPool<byte>.Shared.Rent(CopyBuffer);
        try
        {
            var remaining = length;
            while (remaining > 0)
            {
                var read = await content.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, remaining)), cancellationToken);
                if (read == 0) throw new EndOfStreamException($"Tar entry {name}: the content ended {remaining} bytes short of {length}.");
                await destination.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                remaining -= read;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        var padding = (int)((Block - length % Block) % Block);
        if (padding > 0) await destination.WriteAsync(new byte[padding], cancellationToken);
    }

    public Task WriteEntryAsync(string name, byte[] content, CancellationToken cancellationToken) =>
        WriteEntryAsync(name, content.Length, new MemoryStream(content, writable: false), cancellationToken);

    /// <summary>Ends the archive (two zero blocks). The destination stays open.</summary>
    public async Task FinishAsync(CancellationToken cancellationToken)
    {
        await destination.WriteAsync(new byte[2 * Block], cancellationToken);
        await destination.FlushAsync(cancellationToken);
    }

    /// <summary>A ustar header: mode 0644, owner 0:0, time 0 (like <c>ModelBundle</c>, so downloads are reproducible).</summary>
    private static byte[] Header(string name, long length)
    {
        var header = new byte[Block];
        var (prefix, shortName) = SplitName(name);
        Encoding.ASCII.GetBytes(shortName).CopyTo(header, 0);
        Octal(header, 100, 8, Convert.ToInt64("644", 8));
        Octal(header, 108, 8, 0); // uid
        Octal(header, 116, 8, 0); // gid
        if (length <= MaxOctalSize) Octal(header, 124, 12, length);
        else
        {
            header[124] = 0x80;
            for (var i = 0; i < 8; i++) header[135 - i] = (byte)(length >> (8 * i));
        }
        Octal(header, 136, 12, 0); // mtime
        header[156] = (byte)'0'; // regular file
        "ustar\0"u8.CopyTo(header.AsSpan(257)); // magic
        "00"u8.CopyTo(header.AsSpan(263)); // version
        Encoding.ASCII.GetBytes(prefix).CopyTo(header, 345);

        // The checksum is the byte sum with its own field counted as spaces.
        header.AsSpan(148, 8).Fill((byte)' ');
        var sum = header.Sum(b => (long)b);
        Encoding.ASCII.GetBytes(Convert.ToString(sum, 8).PadLeft(6, '0')).CopyTo(header, 148);
        header[154] = 0;
        header[155] = (byte)' ';
        return header;
    }

    /// <summary>Ustar names: up to 100 bytes, or a prefix of up to 155 bytes split off at a '/'.</summary>
    private static (string Prefix, string Name) SplitName(string name)
    {
        if (name.Length == 0 || name.Any(c => c > 127)) throw new ArgumentException($"Tar entry name '{name}' must be non-empty ASCII.", nameof(name));
        if (name.Length <= 100) return ("", name);
        for (var slash = name.IndexOf('/'); slash >= 0; slash = name.IndexOf('/', slash + 1))
            if (slash <= 155 && name.Length - slash - 1 <= 100) return (name[..slash], name[(slash + 1)..]);
        throw new ArgumentException($"Tar entry name '{name}' is too long for ustar.", nameof(name));
    }

    /// <summary>Zero-padded octal digits and a terminating NUL, filling the field.</summary>
    private static void Octal(byte[] header, int offset, int width, long value) =>
        Encoding.ASCII.GetBytes(Convert.ToString(value, 8).PadLeft(width - 1, '0')).CopyTo(header, offset);
}
