using System.Buffers;
using System.Runtime.CompilerServices;
using System.Text;

namespace FineTuneService.Datasets.Jsonl;

internal enum JsonlLineProblem
{
    None,
    TooLong,
    InvalidEncoding,
}

/// <summary>One physical line: 1-based number and text, or the reason it has no text.</summary>
internal readonly record struct JsonlLine(int Number, string? Text, JsonlLineProblem Problem)
{
    /// <summary>The line-numbered issue for a line without text (too long, or not UTF-8); null for a readable line.</summary>
    public DatasetIssue? Issue(int maxLineBytes) => Problem switch
    {
        JsonlLineProblem.TooLong => new DatasetIssue(DatasetErrorCodes.LineTooLong, $"The line is longer than {maxLineBytes} bytes.", Number),
        JsonlLineProblem.InvalidEncoding => new DatasetIssue(DatasetErrorCodes.InvalidEncoding, "The line is not valid UTF-8.", Number),
        _ => null,
    };
}

/// <summary>
/// Splits a UTF-8 byte stream into lines ('\n', optional '\r' before it; a leading BOM is dropped) in 64 KiB reads.
/// Memory stays bounded: a line longer than <paramref name="maxLineBytes"/> is skipped to its end and reported, and
/// invalid UTF-8 is reported per line instead of being replaced.
/// </summary>
internal sealed class JsonlLineReader(Stream stream, int maxLineBytes)
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly byte[] _buffer = new byte[64 * 1024];
    private readonly ArrayBufferWriter<byte> _line = new();
    private readonly List<JsonlLine> _ready = [];
    private bool _tooLong;
    private int _lineNumber;

    /// <summary>Bytes consumed from the stream so far (read-ahead included).</summary>
    public long BytesRead { get; private set; }

    public async IAsyncEnumerable<JsonlLine> ReadAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        int read;
        while ((read = await stream.ReadAsync(_buffer, cancellationToken)) > 0)
        {
            foreach (var line in Split(read))
                yield return line;
        }

        if (Finish() is { } last)
            yield return last;
    }

    public IEnumerable<JsonlLine> Read()
    {
        int read;
        while ((read = stream.Read(_buffer)) > 0)
        {
            foreach (var line in Split(read))
                yield return line;
        }

        if (Finish() is { } last)
            yield return last;
    }

    private List<JsonlLine> Split(int read)
    {
        BytesRead += read;
        _ready.Clear();
        var chunk = _buffer.AsSpan(0, read);
        while (!chunk.IsEmpty)
        {
            int newline = chunk.IndexOf((byte)'\n');
            Append(newline < 0 ? chunk : chunk[..newline]);
            if (newline < 0)
                break;
            _ready.Add(Complete());
            chunk = chunk[(newline + 1)..];
        }

        return _ready;
    }

    private void Append(ReadOnlySpan<byte> part)
    {
        if (_tooLong)
            return;
        if (_line.WrittenCount + part.Length > maxLineBytes)
        {
            _tooLong = true;
            _line.ResetWrittenCount();
            return;
        }

        _line.Write(part);
    }

    private JsonlLine Complete()
    {
        _lineNumber++;
        var bytes = _line.WrittenSpan;
        if (bytes is [.., (byte)'\r'])
            bytes = bytes[..^1];
        if (_lineNumber == 1 && bytes is [0xEF, 0xBB, 0xBF, ..])
            bytes = bytes[3..];

        JsonlLine line;
        if (_tooLong)
            line = new JsonlLine(_lineNumber, null, JsonlLineProblem.TooLong);
        else
        {
            try
            {
                line = new JsonlLine(_lineNumber, StrictUtf8.GetString(bytes), JsonlLineProblem.None);
            }
            catch (DecoderFallbackException)
            {
                line = new JsonlLine(_lineNumber, null, JsonlLineProblem.InvalidEncoding);
            }
        }

        _line.ResetWrittenCount();
        _tooLong = false;
        return line;
    }

    private JsonlLine? Finish() => _line.WrittenCount > 0 || _tooLong ? Complete() : null;
}
