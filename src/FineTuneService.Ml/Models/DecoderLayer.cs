using TorchSharp;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Models;

/// <summary>Pre-norm transformer block: attention and SwiGLU MLP, each with a residual connection.</summary>
public sealed class DecoderLayer : nn.Module
{
    // Field names are checkpoint keys.
    private readonly DecoderAttention self_attn;
    private readonly DecoderMlp mlp;
    private readonly RmsNorm input_layernorm;
    private readonly RmsNorm post_attention_layernorm;

    public DecoderLayer(DecoderConfig config, int index) : base(nameof(DecoderLayer))
    {
        Index = index;
        self_attn = new DecoderAttention(config);
        mlp = new DecoderMlp(config);
        input_layernorm = new RmsNorm(config.HiddenSize, config.RmsNormEps);
        post_attention_layernorm = new RmsNorm(config.HiddenSize, config.RmsNormEps);
        RegisterComponents();
    }

    public int Index { get; }
    public DecoderAttention SelfAttention => self_attn;
    public DecoderMlp Mlp => mlp;
    public RmsNorm InputLayerNorm => input_layernorm;
    public RmsNorm PostAttentionLayerNorm => post_attention_layernorm;

    /// <summary>Key prefix of this layer, "model.layers.{i}.".</summary>
    public string KeyPrefix => DecoderKeys.LayerPrefix(Index);

    /// <summary>Full checkpoint keys of the attention parameters (projections, their biases and LoRA factors).</summary>
    public IReadOnlyList<string> AttentionParameterNames =>
        self_attn.named_parameters().Select(p => KeyPrefix + "self_attn." + p.name).ToList();

    /// <summary>Full checkpoint keys of the MLP parameters.</summary>
    public IReadOnlyList<string> MlpParameterNames =>
        mlp.named_parameters().Select(p => KeyPrefix + "mlp." + p.name).ToList();

    public Tensor Forward(Tensor hidden, RotaryTables rotary, Tensor? mask, KvCache? cache)
    {
        using var scope = NewDisposeScope();
        var attended = hidden + self_attn.Forward(input_layernorm.call(hidden), rotary, mask, cache, Index);
        var output = attended + mlp.call(post_attention_layernorm.call(attended));
        return output.MoveToOuterDisposeScope();
    }
}
