using FineTuneService.Datasets.Jsonl;

namespace FineTuneService.Ml.Evaluation.PromptSets;

/// <summary>Loads user-uploaded prompt sets (JSONL) for <c>POST /v1/safety/evaluations</c>.</summary>
public static class PromptSetLoader
{
    /// <summary>
    /// User-uploaded prompt set in the <see cref="PromptJsonl"/> format: <c>{"prompt": "...", "category": "..."}</c>
    /// (category optional) or chat rows whose last user turn is the prompt. Blank lines are skipped; the first error
    /// is thrown with its line.
    /// </summary>
    public static PromptSet LoadJsonl(Stream stream, string name = "uploaded") => ToPromptSet(PromptJsonl.Read(stream), name);

    public static PromptSet LoadJsonl(string path, string name = "uploaded")
    {
        using var stream = File.OpenRead(path);
        try { return LoadJsonl(stream, name); }
        catch (InvalidDataException e) { throw new InvalidDataException($"{path}: {e.Message}", e); }
    }

    /// <summary>The prompts of a valid report; an invalid one throws with its first error ("line N: message").</summary>
    public static PromptSet ToPromptSet(PromptFileReport report, string name = "uploaded")
    {
        if (!report.IsValid)
        {
            var first = report.Errors[0];
            throw new InvalidDataException(first.Line is null ? first.Message : $"line {first.Line}: {first.Message}");
        }
        return new PromptSet(name, report.Prompts.Select(p => new EvaluationPrompt(p.Prompt, p.Category)).ToList());
    }
}
