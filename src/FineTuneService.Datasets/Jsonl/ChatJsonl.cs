using System.Runtime.CompilerServices;

namespace FineTuneService.Datasets.Jsonl;

/// <summary>
/// Reads training examples from JSONL (chat or prompt/completion rows), streaming. Meant for files that passed
/// <see cref="DatasetValidator"/>: the first bad row throws <see cref="InvalidDataException"/> naming its line.
/// Blank lines are skipped.
/// </summary>
public static class ChatJsonl
{
    /// <summary>Longest line the reader accepts (the validator's configurable limit is normally stricter).</summary>
    public const int MaxLineBytes = 64 * 1024 * 1024;

    public static IEnumerable<ChatExample> Read(Stream stream)
    {
        var tracker = new FormatTracker();
        foreach (var line in new JsonlLineReader(stream, MaxLineBytes).Read())
        {
            if (tracker.Parse(line) is { } example)
                yield return example;
        }
    }

    public static async IAsyncEnumerable<ChatExample> ReadAsync(Stream stream, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var tracker = new FormatTracker();
        await foreach (var line in new JsonlLineReader(stream, MaxLineBytes).ReadAsync(cancellationToken))
        {
            if (tracker.Parse(line) is { } example)
                yield return example;
        }
    }

    /// <summary>Reads a whole file from disk.</summary>
    public static IReadOnlyList<ChatExample> ReadFile(string path)
    {
        using var stream = File.OpenRead(path);
        return Read(stream).ToList();
    }

    /// <summary>Parses rows and rejects a file that mixes the two formats.</summary>
    private sealed class FormatTracker
    {
        private readonly List<DatasetIssue> _issues = [];
        private DatasetFormat _format;

        public ChatExample? Parse(JsonlLine line)
        {
            if (line.Issue(MaxLineBytes) is { } unreadable) throw new InvalidDataException(unreadable.ToString());
            var (lineNumber, text, _) = line;

            if (string.IsNullOrWhiteSpace(text))
                return null;
            _issues.Clear();
            var (format, example) = ChatJsonlRow.Parse(text, lineNumber, _issues);
            if (_issues.Count > 0)
                throw new InvalidDataException(_issues[0].ToString());
            if (_format != DatasetFormat.Unknown && format != _format)
                throw new InvalidDataException(new DatasetIssue(DatasetErrorCodes.InvalidFormat, "Mixed chat and prompt/completion rows.", lineNumber).ToString());
            _format = format;
            return example;
        }
    }
}
