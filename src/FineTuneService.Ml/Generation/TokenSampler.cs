using static TorchSharp.torch;

namespace FineTuneService.Ml.Generation;

/// <summary>Picks the next token from last-position logits: greedy at temperature 0, else temperature / top-k / top-p sampling.</summary>
internal static class TokenSampler
{
    /// <summary>Next token per row of <paramref name="logits"/> [B, V], as [B] int64.</summary>
    public static Tensor Next(Tensor logits, double temperature, double topP, int topK, Generator sampler) =>
        temperature <= 0
            ? logits.to_type(ScalarType.Float32).argmax(-1)
            : Probabilities(logits, temperature, topP, topK).multinomial(1, replacement: false, generator: sampler).squeeze(-1);

    /// <summary>Sampling distribution per row [B, V] (temperature &gt; 0): tokens outside top-k and top-p get probability 0.</summary>
    public static Tensor Probabilities(Tensor logits, double temperature, double topP, int topK)
    {
        var scores = logits.to_type(ScalarType.Float32) / temperature;
        if (topK > 0 && topK < scores.shape[^1])
        {
            var (kth, _) = scores.topk(topK, dim: -1);
            var threshold = kth.narrow(-1, topK - 1, 1);
            scores = scores.masked_fill(scores.lt(threshold), double.NegativeInfinity);
        }
        if (topP < 1.0)
        {
            var (sorted, order) = scores.sort(-1, descending: true);
            var probabilities = sorted.softmax(-1);
            // Drop a token when the tokens ranked above it already reach top_p; the first always stays.
            var before = probabilities.cumsum(-1) - probabilities;
            var dropSorted = before.ge(topP).to_type(ScalarType.Float32);
            var drop = dropSorted.scatter(-1, order, dropSorted).to_type(ScalarType.Bool);
            scores = scores.masked_fill(drop, double.NegativeInfinity);
        }
        return scores.softmax(-1);
    }
}
