using System.Text.Json;

namespace FineTuneService.Datasets.Jsonl;

/// <summary>One prompt of an uploaded prompt set, with the 1-based line it came from.</summary>
public sealed record PromptRow(string Prompt, string? Category, int LineNumber);

/// <summary>Outcome of reading a prompt-set file: the prompts, and the first line-numbered errors (all counted).</summary>
public sealed record PromptFileReport(IReadOnlyList<PromptRow> Prompts, int ErrorCount, IReadOnlyList<DatasetIssue> Errors)
{
    public bool IsValid => ErrorCount == 0;

    /// <summary>"2 error(s): line 3: invalid_json: …; line 7: …" for an error message.</summary>
    public string Summary(int shown = 5) => DatasetIssue.Summary(ErrorCount, Errors, shown);
}

/// <summary>
/// Prompt-set files for safety evaluations (JSONL, one prompt per line). Two row forms are accepted:
/// <c>{"prompt": "...", "category": "..."}</c> (category optional), and a chat row
/// <c>{"messages": [{"role": "user", "content": "..."}, ...], "category": "..."}</c> whose last user turn is the prompt
/// (so a fine-tuning file can be evaluated as it is). Blank lines are skipped; every problem names its line.
/// </summary>
public static class PromptJsonl
{
    public const string TooManyPrompts = "too_many_prompts";
    public const string NoUserMessage = "no_user_message";
    private const int MaxLineBytes = 1024 * 1024;

    public static async Task<PromptFileReport> ReadAsync(Stream stream, int maxPrompts = 10_000, int maxErrorsReported = 20,
        CancellationToken cancellationToken = default)
    {
        var collector = new Collector(maxPrompts, maxErrorsReported);
        await foreach (var line in new JsonlLineReader(stream, MaxLineBytes).ReadAsync(cancellationToken)) collector.Add(line);
        return collector.Finish();
    }

    public static PromptFileReport Read(Stream stream, int maxPrompts = 10_000, int maxErrorsReported = 20)
    {
        var collector = new Collector(maxPrompts, maxErrorsReported);
        foreach (var line in new JsonlLineReader(stream, MaxLineBytes).Read()) collector.Add(line);
        return collector.Finish();
    }

    private sealed class Collector(int maxPrompts, int maxErrorsReported)
    {
        private readonly List<PromptRow> _prompts = [];
        private readonly List<DatasetIssue> _errors = [];
        private int _errorCount;

        public void Add(JsonlLine line)
        {
            if (line.Issue(MaxLineBytes) is { } unreadable)
            {
                Error(unreadable);
                return;
            }
            if (string.IsNullOrWhiteSpace(line.Text)) return;
            var row = Parse(line.Text, line.Number, out var issue);
            if (issue is not null) Error(issue);
            else if (_prompts.Count == maxPrompts) Error(new DatasetIssue(TooManyPrompts, $"a prompt set has at most {maxPrompts} prompts.", line.Number));
            else _prompts.Add(row!);
        }

        public PromptFileReport Finish()
        {
            if (_prompts.Count == 0 && _errorCount == 0) Error(new DatasetIssue(DatasetErrorCodes.TooFewExamples, "the prompt set has no prompts."));
            return new PromptFileReport(_prompts, _errorCount, _errors);
        }

        private void Error(DatasetIssue issue)
        {
            _errorCount++;
            if (_errors.Count < maxErrorsReported) _errors.Add(issue);
        }
    }

    private static PromptRow? Parse(string text, int line, out DatasetIssue? issue)
    {
        issue = null;
        JsonElement row;
        try
        {
            using var document = JsonDocument.Parse(text);
            row = document.RootElement.Clone();
        }
        catch (JsonException e)
        {
            issue = new DatasetIssue(DatasetErrorCodes.InvalidJson, $"invalid JSON ({e.Message})", line);
            return null;
        }
        if (row.ValueKind != JsonValueKind.Object)
        {
            issue = new DatasetIssue(DatasetErrorCodes.InvalidFormat, "expected a JSON object like {\"prompt\": \"...\"} or {\"messages\": [...]}.", line);
            return null;
        }

        string? category = null;
        if (row.TryGetProperty("category", out var c) && c.ValueKind != JsonValueKind.Null)
        {
            if (c.ValueKind != JsonValueKind.String)
            {
                issue = new DatasetIssue(DatasetErrorCodes.InvalidContent, "\"category\" must be a string.", line);
                return null;
            }
            category = string.IsNullOrWhiteSpace(c.GetString()) ? null : c.GetString();
        }

        if (row.TryGetProperty("prompt", out var prompt))
        {
            if (prompt.ValueKind == JsonValueKind.String && !string.IsNullOrWhiteSpace(prompt.GetString()))
                return new PromptRow(prompt.GetString()!, category, line);
            issue = new DatasetIssue(DatasetErrorCodes.MissingContent, "\"prompt\" must be a non-empty string.", line);
            return null;
        }
        if (row.TryGetProperty("messages", out var messages))
        {
            var last = LastUserTurn(messages);
            if (last is not null) return new PromptRow(last, category, line);
            issue = new DatasetIssue(NoUserMessage, "\"messages\" must be an array with a user turn {\"role\": \"user\", \"content\": \"...\"}.", line);
            return null;
        }
        issue = new DatasetIssue(DatasetErrorCodes.InvalidFormat, "\"prompt\" (a string) or \"messages\" (an array with a user turn) is required.", line);
        return null;
    }

    private static string? LastUserTurn(JsonElement messages)
    {
        if (messages.ValueKind != JsonValueKind.Array) return null;
        string? last = null;
        foreach (var message in messages.EnumerateArray())
        {
            if (message.ValueKind == JsonValueKind.Object
                && message.TryGetProperty("role", out var role) && role.ValueEquals(ChatMessage.User)
                && message.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String
                && !string.IsNullOrWhiteSpace(content.GetString()))
                last = content.GetString();
        }
        return last;
    }
}
