using System.Text.Json;
using static FineTuneService.Datasets.Jsonl.DatasetErrorCodes;

namespace FineTuneService.Datasets.Jsonl;

/// <summary>
/// Parses OpenAI's preference rows for DPO:
/// <c>{"input":{"messages":[..]},"preferred_output":[{"role":"assistant","content":..}],"non_preferred_output":[..]}</c>.
/// The input ends with a user turn; each output is exactly one non-empty assistant message, and the two differ.
/// </summary>
internal static class PreferenceJsonlRow
{
    private const string Input = "input";
    private const string PreferredOutput = "preferred_output";
    private const string NonPreferredOutput = "non_preferred_output";
    private static readonly HashSet<string> RowKeys = [Input, PreferredOutput, NonPreferredOutput];

    /// <summary>A row that names any preference key is read as a preference row (and told what it lacks).</summary>
    public static bool IsPreference(JsonElement root) =>
        root.TryGetProperty(Input, out _) || root.TryGetProperty(PreferredOutput, out _) || root.TryGetProperty(NonPreferredOutput, out _);

    public static PreferenceExample? Parse(JsonElement root, int lineNumber, List<DatasetIssue> issues)
    {
        int issuesBefore = issues.Count;
        foreach (var property in root.EnumerateObject())
        {
            if (!RowKeys.Contains(property.Name))
                issues.Add(new DatasetIssue(UnrecognizedKey, $"A preference row has unrecognised key \"{property.Name}\".", lineNumber));
        }

        var input = ParseInput(root, lineNumber, issues);
        var preferred = ParseOutput(root, PreferredOutput, lineNumber, issues);
        var nonPreferred = ParseOutput(root, NonPreferredOutput, lineNumber, issues);
        if (issues.Count > issuesBefore || input is null || preferred is null || nonPreferred is null)
            return null;
        if (preferred == nonPreferred)
        {
            issues.Add(new DatasetIssue(IdenticalOutputs, "preferred_output and non_preferred_output are the same answer, so the pair teaches nothing.", lineNumber));
            return null;
        }
        return new PreferenceExample(input, preferred, nonPreferred, lineNumber);
    }

    private static List<ChatMessage>? ParseInput(JsonElement root, int lineNumber, List<DatasetIssue> issues)
    {
        if (!root.TryGetProperty(Input, out var input) || input.ValueKind != JsonValueKind.Object
            || !input.TryGetProperty("messages", out var messages) || messages.ValueKind != JsonValueKind.Array || messages.GetArrayLength() == 0)
        {
            issues.Add(new DatasetIssue(InvalidFormat, "\"input\" must be an object with a non-empty \"messages\" array.", lineNumber));
            return null;
        }

        int issuesBefore = issues.Count;
        var parsed = new List<ChatMessage>();
        int index = 0;
        foreach (var message in messages.EnumerateArray())
        {
            if (ChatJsonlRow.ParseMessage(message, index++, lineNumber, issues, "input.messages") is { } ok)
                parsed.Add(ok);
        }
        if (issues.Count > issuesBefore) return null;
        if (parsed[^1].Role != ChatMessage.User)
        {
            issues.Add(new DatasetIssue(InvalidRole, $"input.messages must end with a user message (the last one has role \"{parsed[^1].Role}\").", lineNumber));
            return null;
        }
        return parsed;
    }

    /// <summary>The content of the one assistant message in <paramref name="name"/>, or null with the problem reported.</summary>
    private static string? ParseOutput(JsonElement root, string name, int lineNumber, List<DatasetIssue> issues)
    {
        if (!root.TryGetProperty(name, out var output) || output.ValueKind == JsonValueKind.Null
            || (output.ValueKind == JsonValueKind.Array && output.GetArrayLength() == 0))
        {
            issues.Add(new DatasetIssue(MissingContent, $"\"{name}\" is missing or empty.", lineNumber));
            return null;
        }
        if (output.ValueKind != JsonValueKind.Array || output.GetArrayLength() != 1)
        {
            issues.Add(new DatasetIssue(InvalidFormat, $"\"{name}\" must be an array holding exactly one assistant message.", lineNumber));
            return null;
        }

        var message = ChatJsonlRow.ParseMessage(output[0], 0, lineNumber, issues, name);
        if (message is null) return null;
        if (message.Role != ChatMessage.Assistant)
        {
            issues.Add(new DatasetIssue(InvalidRole, $"{name}[0] has role \"{message.Role}\"; expected \"assistant\".", lineNumber));
            return null;
        }
        if (message.Weight is not null)
        {
            issues.Add(new DatasetIssue(InvalidWeight, $"{name}[0]: \"weight\" has no meaning in a preference output.", lineNumber));
            return null;
        }
        return message.Content;
    }
}
