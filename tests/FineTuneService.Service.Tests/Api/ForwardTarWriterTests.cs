using System.Formats.Tar;
using System.Text;
using FineTuneService.Core.Artifacts;

namespace FineTuneService.Service.Tests.Api;

/// <summary>The streaming tar writer of model downloads, read back by .NET's <see cref="TarReader"/>.</summary>
public sealed class ForwardTarWriterTests
{
    [Fact]
    public async Task Entries_read_back_with_their_names_and_bytes_including_long_nested_names()
    {
        var longName = string.Join('/', Enumerable.Range(0, 12).Select(i => $"folder{i:D2}")) + "/model-00001-of-00002.safetensors";
        Assert.True(longName.Length > 100);
        var files = new Dictionary<string, byte[]>
        {
            ["config.json"] = Encoding.UTF8.GetBytes("{\"model_type\": \"qwen2\"}"),
            ["empty.txt"] = [],
            ["block.bin"] = Enumerable.Range(0, 512).Select(i => (byte)i).ToArray(),
            [longName] = Enumerable.Range(0, 1000).Select(i => (byte)(i * 7)).ToArray(),
        };
        var archive = new MemoryStream();
        var writer = new ForwardTarWriter(new ForwardOnly(archive));
        foreach (var (name, content) in files) await writer.WriteEntryAsync(name, content, CancellationToken.None);
        await writer.FinishAsync(CancellationToken.None);

        Assert.Equal(0, archive.Length % 512);
        archive.Position = 0;
        using var reader = new TarReader(archive);
        var read = new Dictionary<string, byte[]>();
        while (reader.GetNextEntry() is { } entry)
        {
            Assert.Equal(TarEntryFormat.Ustar, entry.Format);
            using var content = new MemoryStream();
            entry.DataStream?.CopyTo(content);
            read[entry.Name] = content.ToArray();
        }
        Assert.Equal(files.Keys.Order(), read.Keys.Order());
        foreach (var (name, content) in files) Assert.Equal(content, read[name]);
    }

    [Fact]
    public async Task A_file_over_8_GiB_gets_the_base_256_size_tar_readers_understand()
    {
        const long size = (9L << 30) + 3;
        var sink = new HeaderSink();
        await new ForwardTarWriter(sink).WriteEntryAsync("model.safetensors", size, new Endless(), CancellationToken.None);

        Assert.Equal(size + (512 - size % 512) + 512, sink.Length); // header, data, padding
        // Unseekable, as a download is: a seekable stream would make the reader seek past the 9 GiB of data.
        using var reader = new TarReader(new ReadOnly(new MemoryStream(sink.Header)));
        var entry = reader.GetNextEntry(copyData: false)!;
        Assert.Equal("model.safetensors", entry.Name);
        Assert.Equal(size, entry.Length);
    }

    [Fact]
    public async Task Content_shorter_than_announced_is_an_error_not_a_corrupt_archive()
    {
        var writer = new ForwardTarWriter(new MemoryStream());
        await Assert.ThrowsAsync<EndOfStreamException>(() =>
            writer.WriteEntryAsync("short.bin", 10, new MemoryStream([1, 2, 3]), CancellationToken.None));
    }

    /// <summary>A response body as a client reads it: read only, no seeking.</summary>
    private sealed class ReadOnly(Stream inner) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>An HTTP response body: write only, no seeking, no position.</summary>
    private sealed class ForwardOnly(Stream inner) : Stream
    {
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => inner.WriteAsync(buffer, cancellationToken);
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }

    /// <summary>Keeps the first block and counts the rest.</summary>
    private sealed class HeaderSink : Stream
    {
        public byte[] Header { get; } = new byte[512];
        public override long Length => _written;
        private long _written;
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Position { get => _written; set => throw new NotSupportedException(); }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_written < Header.Length) buffer.Span[..(int)Math.Min(buffer.Length, Header.Length - _written)].CopyTo(Header.AsSpan((int)_written));
            _written += buffer.Length;
            return ValueTask.CompletedTask;
        }

        public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().Wait();
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }

    /// <summary>Hands out as many bytes as asked for without producing them (their value does not matter here).</summary>
    private sealed class Endless : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.FromResult(buffer.Length);
        public override int Read(byte[] buffer, int offset, int count) => count;
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
