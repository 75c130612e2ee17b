using System.Text.Json;
using static FineTuneService.Datasets.Jsonl.DatasetErrorCodes;

namespace FineTuneService.Datasets.Jsonl;

/// <summary>A parsed row: its format and, when valid, a chat example or a preference pair.</summary>
internal readonly record struct ParsedRow(DatasetFormat Format, ChatExample? Chat = null, PreferenceExample? Preference = null)
{
    public static readonly ParsedRow Invalid = new(DatasetFormat.Unknown);
}

/// <summary>Parses one JSONL row in any supported format; shared by the validator and the readers.</summary>
internal static class ChatJsonlRow
{
    private static readonly HashSet<string> Roles = [ChatMessage.System, ChatMessage.User, ChatMessage.Assistant];
    private static readonly HashSet<string> MessageKeys = ["role", "content", "weight", "name"];

    /// <summary>
    /// Parses <paramref name="line"/>. Returns the detected format (Unknown when the row is not JSON or fits no
    /// format) and the example or pair when the row is valid; every problem goes to <paramref name="issues"/>.
    /// </summary>
    public static ParsedRow Parse(string line, int lineNumber, List<DatasetIssue> issues)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(line);
        }
        catch (JsonException e)
        {
            issues.Add(new DatasetIssue(InvalidJson, $"Not valid JSON: {e.Message}", lineNumber));
            return ParsedRow.Invalid;
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                issues.Add(new DatasetIssue(InvalidFormat, "Each line must be a JSON object.", lineNumber));
                return ParsedRow.Invalid;
            }

            if (PreferenceJsonlRow.IsPreference(root))
                return new ParsedRow(DatasetFormat.Preference, Preference: PreferenceJsonlRow.Parse(root, lineNumber, issues));

            bool hasMessages = root.TryGetProperty("messages", out var messages);
            bool hasPrompt = root.TryGetProperty("prompt", out var prompt);
            bool hasCompletion = root.TryGetProperty("completion", out var completion);
            if (hasMessages && (hasPrompt || hasCompletion))
            {
                issues.Add(new DatasetIssue(InvalidFormat, "A row has either \"messages\" or \"prompt\"/\"completion\", not both.", lineNumber));
                return ParsedRow.Invalid;
            }

            if (hasMessages)
                return new ParsedRow(DatasetFormat.Chat, ParseChat(messages, lineNumber, issues));
            if (hasPrompt || hasCompletion)
                return new ParsedRow(DatasetFormat.PromptCompletion, ParsePromptCompletion(hasPrompt ? prompt : null, hasCompletion ? completion : null, lineNumber, issues));

            issues.Add(new DatasetIssue(InvalidFormat,
                "Expected a \"messages\" array (chat format), \"prompt\" and \"completion\" strings, or \"input\" with \"preferred_output\" and \"non_preferred_output\" (preference format).",
                lineNumber));
            return ParsedRow.Invalid;
        }
    }

    private static ChatExample? ParseChat(JsonElement messages, int lineNumber, List<DatasetIssue> issues)
    {
        if (messages.ValueKind != JsonValueKind.Array || messages.GetArrayLength() == 0)
        {
            issues.Add(new DatasetIssue(InvalidFormat, "\"messages\" must be a non-empty array.", lineNumber));
            return null;
        }

        int issuesBefore = issues.Count;
        var parsed = new List<ChatMessage>(messages.GetArrayLength());
        int index = 0;
        foreach (var message in messages.EnumerateArray())
        {
            var parsedMessage = ParseMessage(message, index++, lineNumber, issues);
            if (parsedMessage is not null)
                parsed.Add(parsedMessage);
        }

        if (issues.Count > issuesBefore)
            return null;
        if (!parsed.Any(m => m.IsTrainable))
        {
            string why = parsed.Any(m => m.Role == ChatMessage.Assistant)
                ? "Every assistant message has weight 0, so the example trains on nothing."
                : "The example has no assistant message.";
            issues.Add(new DatasetIssue(NoAssistantMessage, why, lineNumber));
            return null;
        }

        return new ChatExample(parsed, lineNumber);
    }

    /// <param name="path">Where the messages array is, for the messages: <c>messages</c>, <c>input.messages</c>.</param>
    internal static ChatMessage? ParseMessage(JsonElement message, int index, int lineNumber, List<DatasetIssue> issues, string path = "messages")
    {
        string where = $"{path}[{index}]";
        if (message.ValueKind != JsonValueKind.Object)
        {
            issues.Add(new DatasetIssue(InvalidFormat, $"{where} must be an object.", lineNumber));
            return null;
        }

        int issuesBefore = issues.Count;
        foreach (var property in message.EnumerateObject())
        {
            if (!MessageKeys.Contains(property.Name))
                issues.Add(new DatasetIssue(UnrecognizedKey, $"{where} has unrecognised key \"{property.Name}\".", lineNumber));
        }

        string? role = null;
        if (!message.TryGetProperty("role", out var roleElement) || roleElement.ValueKind == JsonValueKind.Null)
            issues.Add(new DatasetIssue(MissingRole, $"{where} has no \"role\".", lineNumber));
        else if (roleElement.ValueKind != JsonValueKind.String || !Roles.Contains(roleElement.GetString()!))
            issues.Add(new DatasetIssue(InvalidRole, $"{where} has role {roleElement.GetRawText()}; expected \"system\", \"user\" or \"assistant\".", lineNumber));
        else
            role = roleElement.GetString();

        string? content = null;
        if (!message.TryGetProperty("content", out var contentElement) || contentElement.ValueKind == JsonValueKind.Null)
            issues.Add(new DatasetIssue(MissingContent, $"{where} has no \"content\".", lineNumber));
        else if (contentElement.ValueKind != JsonValueKind.String)
            issues.Add(new DatasetIssue(InvalidContent, $"{where} content must be a string.", lineNumber));
        else
        {
            content = contentElement.GetString()!;
            if (role == ChatMessage.Assistant && string.IsNullOrWhiteSpace(content))
                issues.Add(new DatasetIssue(MissingContent, $"{where} is an assistant message with empty content.", lineNumber));
        }

        int? weight = null;
        if (message.TryGetProperty("weight", out var weightElement))
        {
            if (role is not null && role != ChatMessage.Assistant)
                issues.Add(new DatasetIssue(InvalidWeight, $"{where}: \"weight\" is only allowed on assistant messages.", lineNumber));
            else if (weightElement.ValueKind != JsonValueKind.Number || !weightElement.TryGetInt32(out int w) || w is not (0 or 1))
                issues.Add(new DatasetIssue(InvalidWeight, $"{where}: \"weight\" must be 0 or 1.", lineNumber));
            else
                weight = w;
        }

        return issues.Count > issuesBefore ? null : new ChatMessage(role!, content!, weight);
    }

    private static ChatExample? ParsePromptCompletion(JsonElement? prompt, JsonElement? completion, int lineNumber, List<DatasetIssue> issues)
    {
        string? promptText = StringField(prompt, "prompt", lineNumber, issues);
        string? completionText = StringField(completion, "completion", lineNumber, issues);
        if (promptText is null || completionText is null)
            return null;
        if (string.IsNullOrWhiteSpace(completionText))
        {
            issues.Add(new DatasetIssue(MissingContent, "\"completion\" is empty.", lineNumber));
            return null;
        }

        return new ChatExample([new ChatMessage(ChatMessage.User, promptText), new ChatMessage(ChatMessage.Assistant, completionText)], lineNumber);
    }

    private static string? StringField(JsonElement? element, string name, int lineNumber, List<DatasetIssue> issues)
    {
        if (element is not { } value || value.ValueKind == JsonValueKind.Null)
        {
            issues.Add(new DatasetIssue(MissingContent, $"\"{name}\" is missing.", lineNumber));
            return null;
        }

        if (value.ValueKind != JsonValueKind.String)
        {
            issues.Add(new DatasetIssue(InvalidContent, $"\"{name}\" must be a string.", lineNumber));
            return null;
        }

        return value.GetString();
    }
}
