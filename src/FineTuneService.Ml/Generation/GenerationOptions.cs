namespace FineTuneService.Ml.Generation;

/// <summary>Decoding settings. Temperature 0 is greedy decoding; otherwise temperature / top-k / top-p sampling.</summary>
public sealed record GenerationOptions
{
    public int MaxNewTokens { get; init; } = 128;

    /// <summary>0 selects the most likely token (greedy).</summary>
    public double Temperature { get; init; }

    /// <summary>Nucleus sampling: sample from the smallest set of tokens whose probability reaches this mass.</summary>
    public double TopP { get; init; } = 1.0;

    /// <summary>Sample only among the k most likely tokens; 0 disables.</summary>
    public int TopK { get; init; }

    /// <summary>Seed of the sampling generator; the same seed gives the same output.</summary>
    public long Seed { get; init; }

    /// <summary>Tokens that end a sequence (not included in the output); the model config's EOS ids when null.</summary>
    public IReadOnlyList<int>? StopTokenIds { get; init; }

    /// <summary>Token placed left of shorter prompts; it is masked out, so any id works.</summary>
    public int PadTokenId { get; init; }

    /// <summary>Reuse keys/values of earlier positions instead of recomputing the whole sequence each step.</summary>
    public bool UseKvCache { get; init; } = true;

    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegative(MaxNewTokens);
        ArgumentOutOfRangeException.ThrowIfNegative(Temperature);
        ArgumentOutOfRangeException.ThrowIfNegative(TopK);
        if (TopP is <= 0 or > 1) throw new ArgumentOutOfRangeException(nameof(TopP), TopP, "top_p must be in (0, 1].");
    }
}

/// <summary>Why a sequence ended, in OpenAI terms.</summary>
public enum FinishReason
{
    /// <summary>A stop token was produced.</summary>
    Stop,
    /// <summary>max_new_tokens was reached.</summary>
    Length,
}

/// <summary>Generated token ids of one prompt (without the prompt and without the stop token).</summary>
public sealed record GeneratedSequence(int[] TokenIds, FinishReason FinishReason);
