using System.Text.Json.Nodes;
using FineTuneService.Datasets;
using FineTuneService.Datasets.Templates;
using FineTuneService.Datasets.Tokenization;
using FineTuneService.Ml.Models;

namespace FineTuneService.TestSupport;

/// <summary>
/// Tiny configurations (a few thousand parameters) of both supported architectures, the tiny tied-embedding Qwen2 the
/// service tests' base models share, and the chat JSONL a tenant uploads.
/// </summary>
public static class TinyModels
{
    public static DecoderConfig Llama(bool tied = false) => new()
    {
        Architectures = ["LlamaForCausalLM"],
        ModelType = DecoderConfig.Llama,
        VocabSize = 48,
        HiddenSize = 16,
        IntermediateSize = 40,
        NumHiddenLayers = 2,
        NumAttentionHeads = 4,
        NumKeyValueHeads = 2,
        MaxPositionEmbeddings = 64,
        RmsNormEps = 1e-5,
        RopeTheta = 10000,
        TieWordEmbeddings = tied,
        BosTokenId = 1,
        EosTokenIdNode = JsonValue.Create(2),
        TorchDtype = "float32",
    };

    public static DecoderConfig Qwen2(bool tied = true) => new()
    {
        Architectures = ["Qwen2ForCausalLM"],
        ModelType = DecoderConfig.Qwen2,
        VocabSize = 40,
        HiddenSize = 24,
        IntermediateSize = 48,
        NumHiddenLayers = 3,
        NumAttentionHeads = 6,
        NumKeyValueHeads = 2,
        MaxPositionEmbeddings = 128,
        RmsNormEps = 1e-6,
        RopeTheta = 1000000,
        TieWordEmbeddings = tied,
        BosTokenId = 3,
        EosTokenIdNode = new JsonArray(4, 5),
        TorchDtype = "bfloat16",
        UseSlidingWindow = false,
    };

    /// <summary>A two-layer tied-embedding Qwen2 sized for <paramref name="tokenizer"/>: the service tests' base models.</summary>
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

    /// <summary>A small Llama (hidden 16, 2 heads) sized for <paramref name="tokenizer"/>: the engine tests' random base.</summary>
    public static DecoderConfig Llama(ITextTokenizer tokenizer, int layers = 2, int maxPositions = 256) => new()
    {
        ModelType = DecoderConfig.Llama,
        VocabSize = tokenizer.VocabularySize,
        HiddenSize = 16,
        IntermediateSize = 32,
        NumHiddenLayers = layers,
        NumAttentionHeads = 2,
        MaxPositionEmbeddings = maxPositions,
        EosTokenIdNode = JsonValue.Create(tokenizer.EosTokenId),
    };

    /// <summary>
    /// A Hugging Face folder (ChatML <see cref="TinyTokenizer"/> and a random two-layer <see cref="Llama(ITextTokenizer, int, int)"/>,
    /// seed 11) at <paramref name="folder"/>: the base model the harness and hardening tests start from.
    /// </summary>
    public static string SaveLlamaFolder(string folder, int maxPositions = 256)
    {
        var tokenizer = TinyTokenizer.Trained;
        TokenizerFolder.Save(folder, tokenizer, ChatTemplate.ChatMl, modelMaxLength: 256);
        using var model = DecoderLM.CreateRandom(Llama(tokenizer, maxPositions: maxPositions), seed: 11);
        HuggingFaceCheckpoint.Save(model, folder);
        return folder;
    }

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
