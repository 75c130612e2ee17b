using System.Runtime.CompilerServices;

namespace FineTuneService.Datasets.Jsonl;

/// <summary>
/// Reads training examples from JSONL (chat or prompt/completion rows), streaming. Meant for files that passed
/// <see cref="DatasetValidator"/>: the first bad row throws <see cref="InvalidDataException"/> naming its line.
/// Blank lines are skipped.
/// </summary>
public static class ChatJsonl
{
    public static IEnumerable<ChatExample> Read(Stream stream)
    {
        using var lines = new JsonlLineReader(stream);
        var tracker = new FormatTracker();
        foreach (var (lineNumber, text) in lines.Read())
        {
            if (tracker.Parse(text, lineNumber) is { } example)
                yield return example;
        }
    }

    public static async IAsyncEnumerable<ChatExample> ReadAsync(Stream stream, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using var lines = new JsonlLineReader(stream);
        var tracker = new FormatTracker();
        await foreach (var (lineNumber, text) in lines.ReadAsync(cancellationToken))
        {
            if (tracker.Parse(text, lineNumber) is { } example)
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

        public ChatExample? Parse(string text, int lineNumber)
        {
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
