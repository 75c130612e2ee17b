using System.Runtime.CompilerServices;
using System.Text;

namespace FineTuneService.Datasets.Jsonl;

/// <summary>
/// Streams the lines of a UTF-8 file with 1-based line numbers, never holding more than one line. Invalid UTF-8
/// raises <see cref="DecoderFallbackException"/> instead of being silently replaced.
/// </summary>
internal sealed class JsonlLineReader(Stream stream) : IDisposable
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly CountingStream _counter = new(stream);

    /// <summary>Bytes consumed from the underlying stream so far (read-ahead included).</summary>
    public long BytesRead => _counter.BytesRead;

    public async IAsyncEnumerable<(int LineNumber, string Text)> ReadAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using var reader = new StreamReader(_counter, StrictUtf8, detectEncodingFromByteOrderMarks: false, bufferSize: 64 * 1024, leaveOpen: true);
        int lineNumber = 0;
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            lineNumber++;
            yield return (lineNumber, lineNumber == 1 ? line.TrimStart('\uFEFF') : line);
        }
    }

    public IEnumerable<(int LineNumber, string Text)> Read()
    {
        using var reader = new StreamReader(_counter, StrictUtf8, detectEncodingFromByteOrderMarks: false, bufferSize: 64 * 1024, leaveOpen: true);
        int lineNumber = 0;
        while (reader.ReadLine() is { } line)
        {
            lineNumber++;
            yield return (lineNumber, lineNumber == 1 ? line.TrimStart('\uFEFF') : line);
        }
    }

    public void Dispose() => _counter.Dispose();

    /// <summary>Read-only pass-through that counts bytes, so size limits hold for non-seekable uploads too.</summary>
    private sealed class CountingStream(Stream inner) : Stream
    {
        public long BytesRead { get; private set; }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => BytesRead; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Count(inner.Read(buffer, offset, count));

        public override int Read(Span<byte> buffer) => Count(inner.Read(buffer));

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            Count(await inner.ReadAsync(buffer, cancellationToken));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        private int Count(int read)
        {
            BytesRead += read;
            return read;
        }
    }
}
