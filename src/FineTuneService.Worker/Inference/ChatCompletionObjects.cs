using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.AI;

namespace FineTuneService.Worker.Inference;

/// <summary>OpenAI's <c>chat.completion</c> object.</summary>
public sealed record ChatCompletionObject(string Id, long Created, string Model, IReadOnlyList<ChatChoice> Choices, UsageObject Usage)
{
    public string Object => "chat.completion";
}

public sealed record ChatChoice(int Index, AssistantMessage Message, string FinishReason, OutputSafety? Safety)
{
    public object? Logprobs => null;
}

public sealed record AssistantMessage(string Content)
{
    public string Role => "assistant";
    public object? Refusal => null;
}

/// <summary>OpenAI's <c>chat.completion.chunk</c> object (one SSE event).</summary>
public sealed record ChatCompletionChunk(string Id, long Created, string Model, IReadOnlyList<ChunkChoice> Choices, UsageObject? Usage = null)
{
    public string Object => "chat.completion.chunk";
}

public sealed record ChunkChoice(int Index, ChunkDelta Delta, string? FinishReason = null, OutputSafety? Safety = null)
{
    public object? Logprobs => null;
}

public sealed record ChunkDelta(string? Role = null, string? Content = null);

public sealed record UsageObject(long PromptTokens, long CompletionTokens, long TotalTokens)
{
    public static UsageObject From(UsageDetails? usage) => new(usage?.InputTokenCount ?? 0, usage?.OutputTokenCount ?? 0, usage?.TotalTokenCount ?? 0);

    public UsageObject Plus(UsageObject other) =>
        new(Math.Max(PromptTokens, other.PromptTokens), CompletionTokens + other.CompletionTokens, Math.Max(PromptTokens, other.PromptTokens) + CompletionTokens + other.CompletionTokens);
}

public sealed record ErrorEnvelope(ErrorBody Error);

public sealed record ErrorBody(string Message, string Type, string? Param, string? Code);

internal static class ChatWire
{
    /// <summary>Snake-case names; null members are written (OpenAI sends <c>"logprobs": null</c>), except the optional <c>safety</c>.</summary>
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        TypeInfoResolver = new System.Text.Json.Serialization.Metadata.DefaultJsonTypeInfoResolver
        {
            Modifiers =
            {
                info =>
                {
                    foreach (var property in info.Properties.Where(p => p.Name is "safety" or "usage" && p.PropertyType.IsClass))
                        property.ShouldSerialize = (_, value) => value is not null;
                },
            },
        },
    };

    public static string FinishReasonOf(ChatFinishReason? reason) =>
        reason == ChatFinishReason.ContentFilter ? "content_filter"
        : reason == ChatFinishReason.Length ? "length"
        : "stop";
}
