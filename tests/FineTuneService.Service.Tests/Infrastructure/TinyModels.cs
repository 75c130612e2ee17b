using System.Text.Json.Nodes;
using FineTuneService.Datasets;
using FineTuneService.Ml.Models;

namespace FineTuneService.Service.Tests.Infrastructure;

/// <summary>What the test base models share: a tiny tied-embedding Qwen2 config and the chat JSONL a tenant uploads.</summary>
public static class TinyModels
{
    public static DecoderConfig Qwen2(ITextTokenizer tokenizer, int hiddenSize, int intermediateSize, int maxPositions) => new()
    {
        ModelType = DecoderConfig.Qwen2,
        VocabSize = tokenizer.VocabularySize,
        HiddenSize = hiddenSize,
        IntermediateSize = intermediateSize,
        NumHiddenLayers = 2,
        NumAttentionHeads = 4,
        NumKeyValueHeads = 2,
        MaxPositionEmbeddings = maxPositions,
        TieWordEmbeddings = true,
        EosTokenIdNode = tokenizer.EosTokenId,
        PadTokenId = tokenizer.PadTokenId,
    };

    /// <summary>One chat per line: {"messages": [user, assistant]}.</summary>
    public static string ChatJsonl(IEnumerable<(string User, string Assistant)> chats) =>
        string.Join('\n', chats.Select(c => ChatLine(c.User, c.Assistant))) + "\n";

    public static string ChatLine(string user, string assistant) => new JsonObject
    {
        ["messages"] = new JsonArray(
            new JsonObject { ["role"] = "user", ["content"] = user },
            new JsonObject { ["role"] = "assistant", ["content"] = assistant }),
    }.ToJsonString();
}
