using FineTuneService.Contracts.Jobs;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Models;

/// <summary>
/// A block whose linear projections can be read and swapped by name (q_proj, gate_proj, ...), so LoRA can wrap them
/// while the checkpoint keys stay the same.
/// </summary>
public interface IProjectionHost
{
    IReadOnlyList<string> ProjectionNames { get; }
    nn.Module<Tensor, Tensor> GetProjection(string name);
    void SetProjection(string name, nn.Module<Tensor, Tensor> projection);
}

/// <summary>Checkpoint key names of the decoder (Hugging Face layout).</summary>
public static class DecoderKeys
{
    public static readonly IReadOnlyList<string> AttentionProjections = DecoderProjections.Attention;
    public static readonly IReadOnlyList<string> MlpProjections = DecoderProjections.Mlp;
    public static readonly IReadOnlyList<string> AllProjections = DecoderProjections.All;

    public const string EmbedTokens = "model.embed_tokens.weight";
    public const string FinalNorm = "model.norm.weight";
    public const string LmHead = "lm_head.weight";

    /// <summary>"model.layers.{layer}."</summary>
    public static string LayerPrefix(int layer) => $"model.layers.{layer}.";

    /// <summary>Module path of a projection, e.g. "model.layers.3.self_attn.q_proj".</summary>
    public static string Projection(int layer, string projection) =>
        LayerPrefix(layer) + (AttentionProjections.Contains(projection) ? "self_attn." : MlpProjections.Contains(projection) ? "mlp." : throw UnknownProjection(projection)) + projection;

    internal static ArgumentException UnknownProjection(string name) =>
        new($"Unknown projection '{name}'; known: {string.Join(", ", AllProjections)}.", nameof(name));
}
