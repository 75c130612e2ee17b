using System.Text;

namespace FineTuneService.Ml.Evaluation.PromptSets;

/// <summary>Small RFC 4180 CSV reader (quoted fields may hold commas, quotes and newlines); first row is the header.</summary>
internal sealed class CsvTable
{
    private readonly Dictionary<string, int> columns;

    private CsvTable(string[] header, List<(int Line, string[] Fields)> rows)
    {
        columns = header.Select((name, index) => (name, index)).ToDictionary(c => c.name, c => c.index, StringComparer.Ordinal);
        Rows = rows;
    }

    /// <summary>Data rows with the 1-based line they start on.</summary>
    public IReadOnlyList<(int Line, string[] Fields)> Rows { get; }

    public string Path { get; private init; } = "";

    public int Column(string name) => columns.TryGetValue(name, out var index)
        ? index
        : throw new InvalidDataException($"{Path}: missing column '{name}' (have: {string.Join(", ", columns.Keys)}).");

    public bool HasColumn(string name) => columns.ContainsKey(name);

    public static CsvTable Load(string path)
    {
        var records = Parse(File.ReadAllText(path), path);
        if (records.Count == 0) throw new InvalidDataException($"{path}: empty CSV file.");
        return new CsvTable(records[0].Fields, records.Skip(1).ToList()) { Path = path };
    }

    private static List<(int Line, string[] Fields)> Parse(string text, string path)
    {
        var records = new List<(int, string[])>();
        var fields = new List<string>();
        var field = new StringBuilder();
        var line = 1;
        var recordLine = 1;
        var inQuotes = false;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (inQuotes)
            {
                if (c == '"' && i + 1 < text.Length && text[i + 1] == '"') { field.Append('"'); i++; }
                else if (c == '"') inQuotes = false;
                else { if (c == '\n') line++; field.Append(c); }
                continue;
            }
            switch (c)
            {
                case '"': inQuotes = true; break;
                case ',': fields.Add(field.ToString()); field.Clear(); break;
                case '\r': break;
                case '\n':
                    fields.Add(field.ToString()); field.Clear();
                    records.Add((recordLine, fields.ToArray())); fields.Clear();
                    line++; recordLine = line;
                    break;
                default: field.Append(c); break;
            }
        }
        if (inQuotes) throw new InvalidDataException($"{path}:{recordLine}: unterminated quoted field.");
        if (field.Length > 0 || fields.Count > 0)
        {
            fields.Add(field.ToString());
            records.Add((recordLine, fields.ToArray()));
        }
        return records;
    }
}
