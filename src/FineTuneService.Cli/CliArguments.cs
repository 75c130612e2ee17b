namespace FineTuneService.Cli;

/// <summary>`--name value` and `--flag` options after the command words.</summary>
public sealed class CliArguments
{
    private readonly Dictionary<string, string?> _options = new(StringComparer.OrdinalIgnoreCase);

    public CliArguments(IEnumerable<string> arguments)
    {
        string? pending = null;
        foreach (var argument in arguments)
        {
            if (argument.StartsWith("--", StringComparison.Ordinal))
            {
                if (pending is not null) _options[pending] = null;
                pending = argument[2..];
            }
            else if (pending is not null)
            {
                _options[pending] = argument;
                pending = null;
            }
            else throw new CliUsageException($"Unexpected argument '{argument}'.");
        }
        if (pending is not null) _options[pending] = null;
    }

    public bool Has(string name) => _options.ContainsKey(name);

    public string? Get(string name) => _options.GetValueOrDefault(name);

    public string Get(string name, string fallback) => _options.GetValueOrDefault(name) ?? fallback;

    public int GetInt(string name, int fallback) => Parse(name, fallback, int.Parse);

    public long GetLong(string name, long fallback) => Parse(name, fallback, long.Parse);

    public double GetDouble(string name, double fallback) =>
        Parse(name, fallback, s => double.Parse(s, System.Globalization.CultureInfo.InvariantCulture));

    private T Parse<T>(string name, T fallback, Func<string, T> parse)
    {
        var text = Get(name);
        if (text is null) return fallback;
        try { return parse(text); }
        catch (FormatException) { throw new CliUsageException($"--{name} expects a {typeof(T).Name}, got '{text}'."); }
    }
}

public sealed class CliUsageException(string message) : Exception(message);
