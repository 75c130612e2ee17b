using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Models;

/// <summary>The "model." part of the checkpoint: token embeddings, decoder layers and the final norm.</summary>
public sealed class DecoderBackbone : nn.Module
{
    // Field names are checkpoint keys.
    private readonly Embedding embed_tokens;
    private readonly ModuleList<DecoderLayer> layers;
    private readonly RmsNorm norm;

    public DecoderBackbone(DecoderConfig config) : base(nameof(DecoderBackbone))
    {
        embed_tokens = nn.Embedding(config.VocabSize, config.HiddenSize);
        layers = nn.ModuleList(Enumerable.Range(0, config.NumHiddenLayers).Select(i => new DecoderLayer(config, i)).ToArray());
        norm = new RmsNorm(config.HiddenSize, config.RmsNormEps);
        RegisterComponents();
        _layerView = layers.ToList().AsReadOnly();
    }

    private readonly IReadOnlyList<DecoderLayer> _layerView;

    public Embedding EmbedTokens => embed_tokens;
    public IReadOnlyList<DecoderLayer> Layers => _layerView;
    public RmsNorm Norm => norm;
}

/// <summary>
/// Llama/Qwen2-style causal language model (RMSNorm, RoPE, SwiGLU, grouped-query attention) whose parameter names are
/// the Hugging Face checkpoint keys: <c>model.embed_tokens.weight</c>, <c>model.layers.{i}.self_attn.q_proj.weight</c>, ...,
/// <c>model.norm.weight</c> and <c>lm_head.weight</c> (absent when embeddings are tied).
/// </summary>
public sealed class DecoderLM : nn.Module<Tensor, Tensor>
{
    // Field names are checkpoint keys.
    private readonly DecoderBackbone model;
    private readonly Linear? lm_head;

    private readonly RotaryEmbedding _rotary;

    public DecoderLM(DecoderConfig config) : base(nameof(DecoderLM))
    {
        config.Validate();
        Config = config;
        model = new DecoderBackbone(config);
        lm_head = config.TieWordEmbeddings ? null : nn.Linear(config.HiddenSize, config.VocabSize, hasBias: false);
        _rotary = new RotaryEmbedding(config);
        RegisterComponents();
    }

    public DecoderConfig Config { get; }
    public DecoderBackbone Backbone => model;
    public IReadOnlyList<DecoderLayer> Layers => model.Layers;
    public Embedding EmbedTokens => model.EmbedTokens;

    /// <summary>Output projection weight [V, hidden]: lm_head, or the embedding matrix when tied.</summary>
    public Parameter LmHeadWeight => lm_head?.weight ?? model.EmbedTokens.weight!;

    public Device Device => model.EmbedTokens.weight!.device;
    public ScalarType DType => model.EmbedTokens.weight!.dtype;

    /// <summary>
    /// A randomly initialised model (normal(0, initializer_range) for linear and embedding weights, zero biases,
    /// unit norms), reproducible for a given <paramref name="seed"/>.
    /// </summary>
    public static DecoderLM CreateRandom(DecoderConfig config, long seed, ScalarType dtype = ScalarType.Float32, Device? device = null)
    {
        var lm = new DecoderLM(config);
        using var generator = new Generator((ulong)seed);
        using (no_grad())
        {
            foreach (var (name, parameter) in lm.named_parameters().OrderBy(p => p.name, StringComparer.Ordinal))
            {
                if (name.EndsWith("layernorm.weight", StringComparison.Ordinal) || name == "model.norm.weight") parameter.fill_(1.0);
                else if (name.EndsWith(".bias", StringComparison.Ordinal)) parameter.zero_();
                else parameter.normal_(0.0, config.InitializerRange, generator);
            }
        }
        return lm.To(dtype, device);
    }

    /// <summary>Moves and converts all parameters; returns this model.</summary>
    public DecoderLM To(ScalarType dtype, Device? device = null)
    {
        if (device is not null) this.to(device);
        if (DType != dtype) this.to(dtype);
        return this;
    }

    /// <summary>Logits [B, T, V] for token ids [B, T] with causal attention.</summary>
    public override Tensor forward(Tensor inputIds) => forward(inputIds, null);

    /// <summary>Logits [B, T, V]; <paramref name="attentionMask"/> [B, T] marks real tokens (padding = 0).</summary>
    public Tensor forward(Tensor inputIds, Tensor? attentionMask)
    {
        var output = Forward(inputIds, new DecoderForwardOptions { AttentionMask = attentionMask });
        output.LastHiddenState.Dispose();
        return output.Logits!;
    }

    /// <summary>Full forward pass with cache, hidden states and logits options.</summary>
    public DecoderOutput Forward(Tensor inputIds, DecoderForwardOptions? options = null)
    {
        options ??= new DecoderForwardOptions();
        if (inputIds.dim() != 2) throw new ArgumentException($"input_ids must be [batch, length], got [{string.Join(", ", inputIds.shape)}].", nameof(inputIds));

        using var scope = NewDisposeScope();
        var (batch, length) = (inputIds.shape[0], (int)inputIds.shape[1]);
        var past = options.Cache?.Length ?? 0;
        var total = past + length;
        var mask = options.AttentionMask;
        if (mask is not null && (mask.shape[0] != batch || mask.shape[1] != total))
            throw new ArgumentException($"attention mask must be [{batch}, {total}] (cached + new tokens), got [{string.Join(", ", mask.shape)}].");

        var positions = options.PositionIds ?? PositionIds(mask, batch, past, length, inputIds.device);
        var hidden = model.EmbedTokens.call(inputIds);
        var rotary = _rotary.Compute(positions, hidden.dtype);
        var attentionMask = mask is null && past == 0 ? null : BuildAttentionMask(mask, batch, past, length, inputIds.device);

        var states = options.OutputHiddenStates ? new List<Tensor> { hidden } : null;
        foreach (var layer in model.Layers)
        {
            hidden = layer.Forward(hidden, rotary, attentionMask, options.Cache);
            states?.Add(hidden);
        }
        options.Cache?.Advance(length);

        hidden = model.Norm.call(hidden);
        if (states is not null) states[^1] = hidden;

        Tensor? logits = options.Logits switch
        {
            LogitsMode.All => VocabularyLogits(hidden),
            LogitsMode.LastPosition => VocabularyLogits(hidden.narrow(1, length - 1, 1)),
            _ => null,
        };

        logits?.MoveToOuterDisposeScope();
        hidden.MoveToOuterDisposeScope();
        foreach (var state in states?.SkipLast(1) ?? []) state.MoveToOuterDisposeScope();
        return new DecoderOutput(logits, hidden, states);
    }

    /// <summary>The LM head: logits [..., V] for hidden states [..., hidden] taken after the final norm.</summary>
    public Tensor VocabularyLogits(Tensor hidden) =>
        lm_head is not null ? lm_head.call(hidden) : nn.functional.linear(hidden, model.EmbedTokens.weight!);

    /// <summary>Every linear projection of every layer with its module path (q/k/v/o, gate/up/down).</summary>
    public IEnumerable<(string Name, nn.Module<Tensor, Tensor> Module)> Projections()
    {
        foreach (var layer in Layers)
        {
            foreach (var host in new IProjectionHost[] { layer.SelfAttention, layer.Mlp })
            foreach (var name in host.ProjectionNames)
                yield return (DecoderKeys.Projection(layer.Index, name), host.GetProjection(name));
        }
    }

    private static Tensor PositionIds(Tensor? mask, long batch, int past, int length, Device device)
    {
        if (mask is null) return arange(past, past + length, dtype: ScalarType.Int64, device: device).unsqueeze(0).expand(batch, length);
        // Count real tokens so left padding does not shift positions.
        var counted = mask.to_type(ScalarType.Int64).cumsum(-1) - 1;
        return counted.clamp_min(0).narrow(1, past, length);
    }

    /// <summary>Boolean [B or 1, 1, T, S]: causal, restricted to real keys; every query sees itself so no row is empty.</summary>
    private static Tensor BuildAttentionMask(Tensor? mask, long batch, int past, int length, Device device)
    {
        var queryPositions = arange(past, past + length, dtype: ScalarType.Int64, device: device).unsqueeze(1);
        var keyPositions = arange(0, past + length, dtype: ScalarType.Int64, device: device).unsqueeze(0);
        var allowed = keyPositions.le(queryPositions).unsqueeze(0);
        if (mask is not null) allowed = allowed.logical_and(mask.to_type(ScalarType.Bool).unsqueeze(1));
        allowed = allowed.logical_or(keyPositions.eq(queryPositions).unsqueeze(0));
        return allowed.unsqueeze(1);
    }
}
