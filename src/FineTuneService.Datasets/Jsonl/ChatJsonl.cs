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

    /// <summary>Parses rows and rejects a file that mixes formats or holds preference pairs (read those with <see cref="PreferenceJsonl"/>).</summary>
    private sealed class FormatTracker
    {
        private readonly RowTracker _rows = new();

        public ChatExample? Parse(JsonlLine line)
        {
            if (_rows.Parse(line) is not { } row) return null;
            return row.Chat ?? throw new InvalidDataException(new DatasetIssue(DatasetErrorCodes.InvalidFormat,
                "Preference rows (input/preferred_output) train with method dpo, not supervised.", row.Preference!.LineNumber).ToString());
        }
    }
}

/// <summary>Parses the rows of a validated file in turn: the first bad row, or a change of format, throws naming its line.</summary>
internal sealed class RowTracker
{
    private readonly List<DatasetIssue> _issues = [];
    private DatasetFormat _format;

    /// <summary>The row, or null for a blank line.</summary>
    public ParsedRow? Parse(JsonlLine line)
    {
        if (line.Issue(ChatJsonl.MaxLineBytes) is { } unreadable) throw new InvalidDataException(unreadable.ToString());
        var (lineNumber, text, _) = line;

        if (string.IsNullOrWhiteSpace(text))
            return null;
        _issues.Clear();
        var row = ChatJsonlRow.Parse(text, lineNumber, _issues);
        if (_issues.Count > 0)
            throw new InvalidDataException(_issues[0].ToString());
        if (_format != DatasetFormat.Unknown && row.Format != _format)
            throw new InvalidDataException(new DatasetIssue(DatasetErrorCodes.InvalidFormat, "Mixed row formats in one file.", lineNumber).ToString());
        _format = row.Format;
        return row;
    }
}
