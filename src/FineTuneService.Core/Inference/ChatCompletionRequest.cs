using System.Text.Json;

namespace FineTuneService.Core.Inference;

/// <summary>One chat turn of a request, its content parts joined into one text.</summary>
public sealed record ChatTurn(string Role, string Content);

/// <summary>
/// A <c>POST /v1/chat/completions</c> body, parsed and checked completely: the API rejects what the inference
/// server would, naming the offending field in <see cref="ChatRequestException.Param"/>; the inference server reads
/// the same record. Limits that depend on the model (its context) are checked where the model is loaded.
/// </summary>
public sealed record ChatCompletionRequest
{
    public const int MaxChoices = 16;
    public const int MaxStopSequences = 4;

    /// <summary>Roles a message may have; <c>developer</c> is OpenAI's newer name for <c>system</c>.</summary>
    public static readonly IReadOnlySet<string> Roles = new HashSet<string>(StringComparer.Ordinal) { "system", "developer", "user", "assistant" };

    public required string Model { get; init; }
    public required IReadOnlyList<ChatTurn> Messages { get; init; }

    /// <summary><c>max_completion_tokens</c>, else <c>max_tokens</c>; null = as many as the context leaves.</summary>
    public int? MaxTokens { get; init; }

    /// <summary>Which field <see cref="MaxTokens"/> came from, for errors about it.</summary>
    public string MaxTokensParam { get; init; } = "max_tokens";

    /// <summary>0 is greedy (deterministic); OpenAI's default is 1.</summary>
    public double Temperature { get; init; } = 1.0;
    public double TopP { get; init; } = 1.0;
    public long? Seed { get; init; }
    public IReadOnlyList<string> Stop { get; init; } = [];
    public int N { get; init; } = 1;
    public bool Stream { get; init; }
    public bool IncludeUsage { get; init; }

    /// <summary>Parses and checks a request body.</summary>
    /// <exception cref="ChatRequestException">The body is not a valid request; <see cref="ChatRequestException.Param"/> names the field.</exception>
    public static ChatCompletionRequest Parse(ReadOnlySpan<byte> json)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json.ToArray());
        }
        catch (JsonException e)
        {
            throw new ChatRequestException(null, $"The request body is not valid JSON: {e.Message}");
        }
        using (document) return Parse(document.RootElement);
    }

    /// <inheritdoc cref="Parse(ReadOnlySpan{byte})"/>
    public static ChatCompletionRequest Parse(JsonElement body)
    {
        if (body.ValueKind != JsonValueKind.Object) throw new ChatRequestException(null, "The request body must be a JSON object.");

        var model = Optional(body, "model") is { ValueKind: JsonValueKind.String } m && m.GetString() is { Length: > 0 } name
            ? name : throw new ChatRequestException("model", "'model' is required: the id of a model from /v1/models.");

        var (maxTokens, maxTokensParam) = MaxTokensOf(body);
        var stream = Optional(body, "stream") is { } s ? Boolean(s, "stream") : false;
        var includeUsage = false;
        if (Optional(body, "stream_options") is { ValueKind: not JsonValueKind.Null } options)
        {
            if (!stream) throw new ChatRequestException("stream_options", "'stream_options' is only allowed when 'stream' is true.");
            if (options.ValueKind != JsonValueKind.Object) throw new ChatRequestException("stream_options", "'stream_options' must be an object.");
            includeUsage = Optional(options, "include_usage") is { } usage && Boolean(usage, "stream_options.include_usage");
        }

        return new ChatCompletionRequest
        {
            Model = model,
            Messages = MessagesOf(body),
            MaxTokens = maxTokens,
            MaxTokensParam = maxTokensParam,
            Temperature = Number(body, "temperature", 0, 2) ?? 1.0,
            TopP = Number(body, "top_p", 0, 1, exclusiveMinimum: true) ?? 1.0,
            Seed = Optional(body, "seed") is { ValueKind: not JsonValueKind.Null } seed
                ? seed.ValueKind == JsonValueKind.Number && seed.TryGetInt64(out var value) ? value
                  : throw new ChatRequestException("seed", "'seed' must be an integer.")
                : null,
            Stop = StopOf(body),
            N = Integer(body, "n", 1, MaxChoices) ?? 1,
            Stream = stream,
            IncludeUsage = includeUsage,
        };
    }

    private static IReadOnlyList<ChatTurn> MessagesOf(JsonElement body)
    {
        if (Optional(body, "messages") is not { ValueKind: JsonValueKind.Array } messages)
            throw new ChatRequestException("messages", "'messages' is required: an array of {role, content} objects.");
        if (messages.GetArrayLength() == 0)
            throw new ChatRequestException("messages", "'messages' must contain at least one message.");

        var turns = new List<ChatTurn>();
        var index = 0;
        foreach (var message in messages.EnumerateArray())
        {
            var at = $"messages[{index++}]";
            if (message.ValueKind != JsonValueKind.Object) throw new ChatRequestException(at, $"{at} must be an object with 'role' and 'content'.");
            var role = Optional(message, "role") is { ValueKind: JsonValueKind.String } r ? r.GetString()! : null;
            if (role is null || !Roles.Contains(role))
                throw new ChatRequestException($"{at}.role",
                    $"{at}.role must be one of {string.Join(", ", Roles.Select(x => $"'{x}'"))}" + (role is null ? "." : $"; got '{role}'."));
            turns.Add(new ChatTurn(role == "developer" ? "system" : role, ContentOf(message, at, role)));
        }
        return turns;
    }

    /// <summary>A string, or an array of <c>{"type": "text", "text": ...}</c> parts joined; assistant turns may have none.</summary>
    private static string ContentOf(JsonElement message, string at, string role)
    {
        var content = Optional(message, "content");
        switch (content?.ValueKind)
        {
            case JsonValueKind.String:
                return content.Value.GetString()!;
            case JsonValueKind.Array:
                var parts = new List<string>();
                var index = 0;
                foreach (var part in content.Value.EnumerateArray())
                {
                    var partAt = $"{at}.content[{index++}]";
                    var type = part.ValueKind == JsonValueKind.Object && Optional(part, "type") is { ValueKind: JsonValueKind.String } t ? t.GetString() : null;
                    if (type != "text")
                        throw new ChatRequestException(partAt, $"{partAt} must be a text part {{\"type\": \"text\", \"text\": ...}}; these models read text only" +
                            (type is null ? "." : $", not '{type}'."));
                    parts.Add(Optional(part, "text") is { ValueKind: JsonValueKind.String } text ? text.GetString()!
                        : throw new ChatRequestException($"{partAt}.text", $"{partAt}.text must be a string."));
                }
                return string.Concat(parts);
            case null or JsonValueKind.Null when role == "assistant":
                return "";
            default:
                throw new ChatRequestException($"{at}.content", $"{at}.content must be a string or an array of text parts.");
        }
    }

    private static (int?, string) MaxTokensOf(JsonElement body)
    {
        // The newer name wins when both are sent, as in OpenAI's API.
        foreach (var name in new[] { "max_completion_tokens", "max_tokens" })
            if (Integer(body, name, 1, int.MaxValue) is { } value) return (value, name);
        return (null, "max_tokens");
    }

    private static IReadOnlyList<string> StopOf(JsonElement body)
    {
        var stop = Optional(body, "stop");
        List<string> sequences = stop?.ValueKind switch
        {
            null or JsonValueKind.Null => [],
            JsonValueKind.String => [stop.Value.GetString()!],
            JsonValueKind.Array => stop.Value.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String ? e.GetString()!
                : throw new ChatRequestException("stop", "'stop' must be a string or an array of strings.")).ToList(),
            _ => throw new ChatRequestException("stop", "'stop' must be a string or an array of strings."),
        };
        if (sequences.Count > MaxStopSequences) throw new ChatRequestException("stop", $"'stop' takes at most {MaxStopSequences} sequences.");
        if (sequences.Any(s => s.Length == 0)) throw new ChatRequestException("stop", "'stop' sequences must not be empty.");
        return sequences;
    }

    private static JsonElement? Optional(JsonElement body, string name) => body.TryGetProperty(name, out var value) ? value : null;

    private static bool Boolean(JsonElement value, string name) => value.ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False or JsonValueKind.Null => false,
        _ => throw new ChatRequestException(name, $"'{name}' must be a boolean."),
    };

    private static double? Number(JsonElement body, string name, double minimum, double maximum, bool exclusiveMinimum = false)
    {
        if (Optional(body, name) is not { ValueKind: not JsonValueKind.Null } value) return null;
        if (value.ValueKind != JsonValueKind.Number) throw new ChatRequestException(name, $"'{name}' must be a number.");
        var number = value.GetDouble();
        if (number > maximum || number < minimum || (exclusiveMinimum && number <= minimum))
            throw new ChatRequestException(name, $"'{name}' must be {(exclusiveMinimum ? "greater than" : "at least")} {minimum} and at most {maximum}; got {number}.");
        return number;
    }

    private static int? Integer(JsonElement body, string name, int minimum, int maximum)
    {
        if (Optional(body, name) is not { ValueKind: not JsonValueKind.Null } value) return null;
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt64(out var number))
            throw new ChatRequestException(name, $"'{name}' must be an integer.");
        if (number < minimum || number > maximum)
            throw new ChatRequestException(name, $"'{name}' must be between {minimum} and {maximum}; got {number}.");
        return (int)number;
    }
}

/// <summary>A chat completion request that is not valid; <see cref="Param"/> names the field as OpenAI's error envelope does.</summary>
public sealed class ChatRequestException(string? param, string message) : Exception(message)
{
    public string? Param { get; } = param;
}
