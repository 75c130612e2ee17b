using static TorchSharp.torch;

namespace FineTuneService.Ml.Models;

/// <summary>
/// Preallocated key/value cache for incremental decoding: per layer [B, kvHeads, capacity, headDim].
/// Its tensors live outside dispose scopes; dispose the cache when generation ends.
/// </summary>
public sealed class KvCache : IDisposable
{
    private readonly Tensor[] _keys;   // elements replaced by Relayout
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

    public int Capacity { get; private set; }

    /// <summary>Sequences (rows) held.</summary>
    public int Rows => (int)_keys[0].shape[0];

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

    /// <summary>
    /// Re-lays the cache for continuous batching, in which every row's last token sits in the last column
    /// (<see cref="Length"/> - 1) and shorter rows are padded on the left. Keeps <paramref name="rows"/> (in that
    /// order), drops the first <paramref name="dropColumns"/> columns (padding of every kept row), and appends the
    /// <paramref name="joinerRows"/> of <paramref name="joiner"/> (a prefilled batch, itself left-padded) right-aligned;
    /// when the joiner is longer than the kept columns, the kept rows move right.
    /// </summary>
    /// <returns>How many columns the kept rows moved right (after the drop).</returns>
    internal int Relayout(IReadOnlyList<long> rows, int dropColumns, KvCache? joiner, IReadOnlyList<long> joinerRows, int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(dropColumns);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(dropColumns, Length);
        var joining = joiner is null ? 0 : joinerRows.Count;
        var kept = Length - dropColumns;
        var length = Math.Max(rows.Count > 0 ? kept : 0, joining > 0 ? joiner!.Length : 0);
        var shift = rows.Count > 0 ? length - kept : 0;
        if (length > capacity) throw new ArgumentOutOfRangeException(nameof(capacity), capacity, $"The re-laid cache needs {length} columns.");

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var device = _keys[0].device;
        var rowIndex = rows.Count > 0 ? tensor(rows.ToArray(), ScalarType.Int64, device) : null;
        var joinerIndex = joining > 0 ? tensor(joinerRows.ToArray(), ScalarType.Int64, device) : null;
        for (var layer = 0; layer < _keys.Length; layer++)
        {
            _keys[layer] = Relaid(_keys[layer], joiner?._keys[layer]);
            _values[layer] = Relaid(_values[layer], joiner?._values[layer]);
        }
        Length = length;
        Capacity = capacity;
        return shift;

        Tensor Relaid(Tensor old, Tensor? joined)
        {
            var shape = old.shape;
            var fresh = zeros([rows.Count + joining, shape[1], capacity, shape[3]], old.dtype, old.device);
            if (rowIndex is not null && kept > 0)
                fresh.narrow(0, 0, rows.Count).narrow(2, shift, kept).copy_(old.index_select(0, rowIndex).narrow(2, dropColumns, kept));
            if (joinerIndex is not null)
                fresh.narrow(0, rows.Count, joining).narrow(2, length - joiner!.Length, joiner.Length)
                    .copy_(joined!.index_select(0, joinerIndex).narrow(2, 0, joiner.Length));
            old.Dispose();
            return fresh.DetachFromDisposeScope();
        }
    }

    public void Dispose()
    {
        foreach (var tensor in _keys.Concat(_values)) tensor.Dispose();
    }
}
