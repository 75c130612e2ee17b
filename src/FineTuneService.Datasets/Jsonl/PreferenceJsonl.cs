namespace FineTuneService.Datasets.Jsonl;

/// <summary>
/// Reads preference pairs (OpenAI's DPO rows) from JSONL, streaming. Meant for files that passed
/// <see cref="DatasetValidator"/>: the first bad or non-preference row throws <see cref="InvalidDataException"/> naming its line.
/// </summary>
public static class PreferenceJsonl
{
    public static IEnumerable<PreferenceExample> Read(Stream stream)
    {
        var rows = new RowTracker();
        foreach (var line in new JsonlLineReader(stream, ChatJsonl.MaxLineBytes).Read())
        {
            if (rows.Parse(line) is not { } row) continue;
            yield return row.Preference ?? throw new InvalidDataException(new DatasetIssue(DatasetErrorCodes.InvalidFormat,
                "Method dpo needs preference rows (input, preferred_output, non_preferred_output).", line.Number).ToString());
        }
    }

    /// <summary>Reads a whole file from disk.</summary>
    public static IReadOnlyList<PreferenceExample> ReadFile(string path)
    {
        using var stream = File.OpenRead(path);
        return Read(stream).ToList();
    }
}
