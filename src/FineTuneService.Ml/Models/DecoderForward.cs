using static TorchSharp.torch;

namespace FineTuneService.Ml.Models;

/// <summary>Optional inputs and switches of a decoder forward pass.</summary>
public sealed record DecoderForwardOptions
{
    /// <summary>
    /// Padding mask [B, S] (1/true = real token) over cached plus new tokens. Positions are derived from it, so
    /// left-padded batches get the same positions as unpadded sequences.
    /// </summary>
    public Tensor? AttentionMask { get; init; }

    /// <summary>Explicit positions [B, T]; by default derived from the mask, or counted from the cache length.</summary>
    public Tensor? PositionIds { get; init; }

    /// <summary>KV cache to read and extend (generation).</summary>
    public KvCache? Cache { get; init; }

    /// <summary>Return the hidden states: embeddings, each layer's output, the last one after the final norm (layers + 1).</summary>
    public bool OutputHiddenStates { get; init; }

    /// <summary>Which logits to compute.</summary>
    public LogitsMode Logits { get; init; } = LogitsMode.All;
}

/// <summary>Which positions get LM-head logits in a forward pass.</summary>
public enum LogitsMode
{
    /// <summary>[B, T, V]</summary>
    All,
    /// <summary>[B, 1, V] for the last position only (generation).</summary>
    LastPosition,
    /// <summary>No LM head (hidden states only).</summary>
    None,
}

/// <summary>Result of <see cref="DecoderLM.Forward"/>. Tensors belong to the caller's dispose scope.</summary>
public sealed class DecoderOutput(Tensor? logits, Tensor lastHiddenState, IReadOnlyList<Tensor>? hiddenStates) : IDisposable
{
    public Tensor? Logits { get; } = logits;

    /// <summary>Output of the final norm, [B, T, hidden].</summary>
    public Tensor LastHiddenState { get; } = lastHiddenState;

    /// <summary>Embeddings, then each layer's output (the last after the final norm); null unless requested.</summary>
    public IReadOnlyList<Tensor>? HiddenStates { get; } = hiddenStates;

    public void Dispose()
    {
        Logits?.Dispose();
        LastHiddenState.Dispose();
        if (HiddenStates is null) return;
        foreach (var state in HiddenStates) state.Dispose();
    }
}
