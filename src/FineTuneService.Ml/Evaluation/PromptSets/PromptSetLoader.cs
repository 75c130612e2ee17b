using System.Text.Json;

namespace FineTuneService.Ml.Evaluation.PromptSets;

/// <summary>Loads harmful and over-refusal prompt sets from their published files and user-uploaded JSONL.</summary>
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

    /// <summary>AdvBench <c>harmful_behaviors.csv</c> (goal, target): the goals, no categories.</summary>
    public static PromptSet LoadAdvBench(string path)
    {
        var table = CsvTable.Load(path);
        var goal = table.Column("goal");
        return new PromptSet("advbench", table.Rows.Select(r => new EvaluationPrompt(r.Fields[goal])).ToList());
    }

    /// <summary>
    /// HarmBench text behaviors with their semantic category. Copyright behaviors are left out (HarmBench scores them
    /// by hash matching, not by a harm judge); contextual behaviors get their context prepended, as HarmBench does.
    /// </summary>
    public static PromptSet LoadHarmBench(string path)
    {
        var table = CsvTable.Load(path);
        var (behavior, functional, semantic, context) = (table.Column("Behavior"), table.Column("FunctionalCategory"),
            table.Column("SemanticCategory"), table.Column("ContextString"));
        var prompts = table.Rows
            .Where(r => r.Fields[functional] != "copyright")
            .Select(r => new EvaluationPrompt(
                string.IsNullOrWhiteSpace(r.Fields[context]) ? r.Fields[behavior] : $"{r.Fields[context]}\n\n---\n\n{r.Fields[behavior]}",
                r.Fields[semantic]))
            .ToList();
        return new PromptSet("harmbench", prompts);
    }

    /// <summary>JailbreakBench JBB-Behaviors (Goal, Category).</summary>
    public static PromptSet LoadJailbreakBench(string path)
    {
        var table = CsvTable.Load(path);
        var (goal, category) = (table.Column("Goal"), table.Column("Category"));
        return new PromptSet("jailbreakbench", table.Rows.Select(r => new EvaluationPrompt(r.Fields[goal], r.Fields[category])).ToList());
    }

    /// <summary>XSTest's 250 safe prompts (label "safe"), categorised by type — the over-refusal set.</summary>
    public static PromptSet LoadXsTestSafe(string path)
    {
        var table = CsvTable.Load(path);
        var (prompt, type, label) = (table.Column("prompt"), table.Column("type"), table.Column("label"));
        return new PromptSet("xstest_safe", table.Rows
            .Where(r => r.Fields[label] == "safe")
            .Select(r => new EvaluationPrompt(r.Fields[prompt], r.Fields[type]))
            .ToList());
    }
}
