using System.Text;

namespace FineTuneService.Datasets.Corpus;

/// <summary>Minimal RFC 4180 reader: quoted fields may hold commas, doubled quotes and line breaks.</summary>
internal static class Csv
{
    public static IEnumerable<string[]> Read(TextReader reader)
    {
        var fields = new List<string>();
        var field = new StringBuilder();
        bool inQuotes = false, any = false;
        int c;
        while ((c = reader.Read()) >= 0)
        {
            any = true;
            char ch = (char)c;
            if (inQuotes)
            {
                if (ch != '"')
                    field.Append(ch);
                else if (reader.Peek() == '"')
                    field.Append((char)reader.Read());
                else
                    inQuotes = false;
            }
            else if (ch == '"')
                inQuotes = true;
            else if (ch == ',')
                EndField();
            else if (ch == '\n' || ch == '\r')
            {
                if (ch == '\r' && reader.Peek() == '\n')
                    reader.Read();
                EndField();
                yield return fields.ToArray();
                fields.Clear();
                any = false;
            }
            else
                field.Append(ch);
        }

        if (any)
        {
            EndField();
            yield return fields.ToArray();
        }

        void EndField()
        {
            fields.Add(field.ToString());
            field.Clear();
        }
    }

    /// <summary>Rows as dictionaries keyed by the header row.</summary>
    public static IEnumerable<IReadOnlyDictionary<string, string>> ReadWithHeader(string path)
    {
        using var reader = new StreamReader(path);
        string[]? header = null;
        foreach (var row in Read(reader))
        {
            if (header is null)
            {
                header = row;
                continue;
            }

            if (row is [""])
                continue;
            var record = new Dictionary<string, string>(header.Length, StringComparer.Ordinal);
            for (int i = 0; i < header.Length; i++)
                record[header[i]] = i < row.Length ? row[i] : "";
            yield return record;
        }
    }
}
