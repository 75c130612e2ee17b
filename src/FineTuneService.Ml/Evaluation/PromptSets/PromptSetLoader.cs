using System.Text.Json;

namespace FineTuneService.Ml.Evaluation.PromptSets;

/// <summary>Loads user-uploaded prompt sets (JSONL) for <c>POST /v1/safety/evaluations</c>.</summary>
public static class PromptSetLoader
{
    /// <summary>
    /// User-uploaded prompt set: one JSON object per line, <c>{"prompt": "...", "category": "..."}</c> (category
    /// optional). Blank lines are skipped; errors name the line.
    /// </summary>
    public static PromptSet LoadJsonl(Stream stream, string name = "uploaded")
    {
        using var reader = new StreamReader(stream);
        var prompts = new List<EvaluationPrompt>();
        var lineNumber = 0;
        while (reader.ReadLine() is { } line)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonElement row;
            try { row = JsonDocument.Parse(line).RootElement.Clone(); }
            catch (JsonException e) { throw new InvalidDataException($"line {lineNumber}: invalid JSON ({e.Message})"); }
            if (row.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"line {lineNumber}: expected a JSON object like {{\"prompt\": \"...\"}}.");
            if (!row.TryGetProperty("prompt", out var prompt) || prompt.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(prompt.GetString()))
                throw new InvalidDataException($"line {lineNumber}: \"prompt\" must be a non-empty string.");
            string? category = null;
            if (row.TryGetProperty("category", out var c) && c.ValueKind != JsonValueKind.Null)
                category = c.ValueKind == JsonValueKind.String
                    ? c.GetString()
                    : throw new InvalidDataException($"line {lineNumber}: \"category\" must be a string.");
            prompts.Add(new EvaluationPrompt(prompt.GetString()!, string.IsNullOrWhiteSpace(category) ? null : category));
        }
        if (prompts.Count == 0) throw new InvalidDataException("the prompt set has no prompts.");
        return new PromptSet(name, prompts);
    }

    public static PromptSet LoadJsonl(string path, string name = "uploaded")
    {
        using var stream = File.OpenRead(path);
        try { return LoadJsonl(stream, name); }
        catch (InvalidDataException e) { throw new InvalidDataException($"{path}: {e.Message}", e); }
    }
}
