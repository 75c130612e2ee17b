using FineTuneService.Contracts.Jobs;
using TorchSharp;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Models;

/// <summary>Grouped-query self-attention with rotary embeddings and SDPA.</summary>
public sealed class DecoderAttention : nn.Module, IProjectionHost
{
    // Field names are checkpoint keys.
    private nn.Module<Tensor, Tensor> q_proj;
    private nn.Module<Tensor, Tensor> k_proj;
    private nn.Module<Tensor, Tensor> v_proj;
    private nn.Module<Tensor, Tensor> o_proj;

    private readonly int _heads;
    private readonly int _kvHeads;
    private readonly int _headDim;

    public DecoderAttention(DecoderConfig config) : base(nameof(DecoderAttention))
    {
        _heads = config.NumAttentionHeads;
        _kvHeads = config.KeyValueHeads;
        _headDim = config.HeadDim;
        q_proj = nn.Linear(config.HiddenSize, _heads * _headDim, hasBias: config.QkvBias);
        k_proj = nn.Linear(config.HiddenSize, _kvHeads * _headDim, hasBias: config.QkvBias);
        v_proj = nn.Linear(config.HiddenSize, _kvHeads * _headDim, hasBias: config.QkvBias);
        o_proj = nn.Linear(_heads * _headDim, config.HiddenSize, hasBias: config.OutputProjectionBias);
        RegisterComponents();
    }

    public IReadOnlyList<string> ProjectionNames => DecoderKeys.AttentionProjections;

    public nn.Module<Tensor, Tensor> GetProjection(string name) => name switch
    {
        DecoderProjections.Query => q_proj,
        DecoderProjections.Key => k_proj,
        DecoderProjections.Value => v_proj,
        DecoderProjections.Output => o_proj,
        _ => throw DecoderKeys.UnknownProjection(name),
    };

    public void SetProjection(string name, nn.Module<Tensor, Tensor> projection)
    {
        switch (name)
        {
            case DecoderProjections.Query: q_proj = projection; break;
            case DecoderProjections.Key: k_proj = projection; break;
            case DecoderProjections.Value: v_proj = projection; break;
            case DecoderProjections.Output: o_proj = projection; break;
            default: throw DecoderKeys.UnknownProjection(name);
        }
        // Registering null drops the old child; the field and the registry must name the same module.
        register_module(name, null!);
        register_module(name, projection);
    }

    /// <param name="hidden">[B, T, hidden]</param>
    /// <param name="rotary">cos/sin for the T positions</param>
    /// <param name="mask">boolean [B, 1, T, S] (true = attend) or null for plain causal attention without cache</param>
    /// <param name="cache">optional KV cache; keys/values of these T tokens are appended</param>
    /// <param name="layerIndex">index of the layer in the cache</param>
    public Tensor Forward(Tensor hidden, RotaryTables rotary, Tensor? mask, KvCache? cache, int layerIndex)
    {
        using var scope = NewDisposeScope();
        var (batch, length) = (hidden.shape[0], hidden.shape[1]);

        var queries = q_proj.call(hidden).view(batch, length, _heads, _headDim).transpose(1, 2);
        var keys = k_proj.call(hidden).view(batch, length, _kvHeads, _headDim).transpose(1, 2);
        var values = v_proj.call(hidden).view(batch, length, _kvHeads, _headDim).transpose(1, 2);

        queries = RotaryEmbedding.Apply(queries, rotary);
        keys = RotaryEmbedding.Apply(keys, rotary);
        if (cache is not null) (keys, values) = cache.Append(layerIndex, keys, values);

        if (_kvHeads != _heads)
        {
            var groups = _heads / _kvHeads;
            keys = keys.repeat_interleave(groups, dim: 1);
            values = values.repeat_interleave(groups, dim: 1);
        }

        var attended = nn.functional.scaled_dot_product_attention(queries, keys, values, mask, 0.0, mask is null);
        var merged = attended.transpose(1, 2).reshape(batch, length, _heads * _headDim);
        return o_proj.call(merged).MoveToOuterDisposeScope();
    }
}
