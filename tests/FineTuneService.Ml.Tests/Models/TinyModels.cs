using System.Text.Json.Nodes;
using FineTuneService.Ml.Models;

namespace FineTuneService.Ml.Tests.Models;

/// <summary>Tiny configurations (a few thousand parameters) of both supported architectures.</summary>
internal static class TinyModels
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
}
