using static TorchSharp.torch;

namespace FineTuneService.Ml.Models;

/// <summary>
/// Preallocated key/value cache for incremental decoding: per layer [B, kvHeads, capacity, headDim].
/// Its tensors live outside dispose scopes; dispose the cache when generation ends.
/// </summary>
public sealed class KvCache : IDisposable
{
    private readonly Tensor[] _keys;
    private readonly Tensor[] _values;

    public KvCache(DecoderConfig config, long batchSize, int capacity, ScalarType dtype, Device device)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        Capacity = capacity;
        _keys = new Tensor[config.NumHiddenLayers];
        _values = new Tensor[config.NumHiddenLayers];
        for (var i = 0; i < config.NumHiddenLayers; i++)
        {
            _keys[i] = zeros([batchSize, config.KeyValueHeads, capacity, config.HeadDim], dtype, device).DetachFromDisposeScope();
            _values[i] = zeros([batchSize, config.KeyValueHeads, capacity, config.HeadDim], dtype, device).DetachFromDisposeScope();
        }
    }

    /// <summary>Tokens already stored (the position of the next token).</summary>
    public int Length { get; private set; }

    public int Capacity { get; }

    /// <summary>Stores new keys/values [B, kvHeads, T, headDim] of a layer after the cached ones and returns all of them.</summary>
    internal (Tensor Keys, Tensor Values) Append(int layer, Tensor keys, Tensor values)
    {
        var newTokens = (int)keys.shape[2];
        if (Length + newTokens > Capacity)
            throw new InvalidOperationException($"KV cache capacity {Capacity} exceeded ({Length} cached + {newTokens} new tokens).");
        using (no_grad())
        {
            _keys[layer].narrow(2, Length, newTokens).copy_(keys);
            _values[layer].narrow(2, Length, newTokens).copy_(values);
        }
        return (_keys[layer].narrow(2, 0, Length + newTokens), _values[layer].narrow(2, 0, Length + newTokens));
    }

    /// <summary>Marks <paramref name="tokens"/> more positions as cached; called once per forward after all layers.</summary>
    internal void Advance(int tokens) => Length += tokens;

    public void Dispose()
    {
        foreach (var tensor in _keys.Concat(_values)) tensor.Dispose();
    }
}
