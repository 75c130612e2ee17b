using static TorchSharp.torch;

namespace FineTuneService.Ml.Models;

/// <summary>Cos/sin tables of rotary position embeddings for one forward pass, shaped [B, 1, T, headDim].</summary>
public sealed record RotaryTables(Tensor Cos, Tensor Sin);

/// <summary>Rotary position embeddings in the Hugging Face "rotate half" layout.</summary>
internal sealed class RotaryEmbedding(int headDim, double theta)
{
    private readonly float[] _inverseFrequencies = Enumerable.Range(0, headDim / 2)
        .Select(i => (float)(1.0 / Math.Pow(theta, 2.0 * i / headDim)))
        .ToArray();

    /// <summary>Tables for integer positions [B, T]; computed in fp32 and cast to <paramref name="dtype"/>.</summary>
    public RotaryTables Compute(Tensor positionIds, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var inverse = tensor(_inverseFrequencies, device: positionIds.device);
        var frequencies = positionIds.to_type(ScalarType.Float32).unsqueeze(-1) * inverse;
        var angles = cat([frequencies, frequencies], -1).unsqueeze(1);
        var cos = angles.cos().to_type(dtype).MoveToOuterDisposeScope();
        var sin = angles.sin().to_type(dtype).MoveToOuterDisposeScope();
        return new RotaryTables(cos, sin);
    }

    /// <summary>Rotates queries or keys [B, heads, T, headDim].</summary>
    public static Tensor Apply(Tensor x, RotaryTables tables)
    {
        using var scope = NewDisposeScope();
        var half = x.shape[^1] / 2;
        var first = x.narrow(-1, 0, half);
        var second = x.narrow(-1, half, half);
        var rotated = cat([second.neg(), first], -1);
        return (x * tables.Cos + rotated * tables.Sin).MoveToOuterDisposeScope();
    }
}
