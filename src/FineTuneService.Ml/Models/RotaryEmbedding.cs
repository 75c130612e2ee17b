using static TorchSharp.torch;

namespace FineTuneService.Ml.Models;

/// <summary>Cos/sin tables of rotary position embeddings for one forward pass, shaped [B, 1, T, headDim].</summary>
public sealed record RotaryTables(Tensor Cos, Tensor Sin);

/// <summary>Rotary position embeddings in the Hugging Face "rotate half" layout, with linear or Llama 3 frequency scaling.</summary>
internal sealed class RotaryEmbedding(DecoderConfig config)
{
    private readonly float[] _inverseFrequencies = InverseFrequencies(config);

    internal static float[] InverseFrequencies(DecoderConfig config)
    {
        var headDim = config.HeadDim;
        var frequencies = Enumerable.Range(0, headDim / 2).Select(i => 1.0 / Math.Pow(config.RopeTheta, 2.0 * i / headDim));
        var scaling = config.RopeScalingSettings;
        frequencies = scaling switch
        {
            null => frequencies,
            { Type: "linear" } => frequencies.Select(f => f / scaling.Factor),
            { Type: "llama3" } => frequencies.Select(f => Llama3(f, scaling)),
            _ => throw new NotSupportedException($"rope_scaling type '{scaling.Type}' is not supported."),
        };
        return frequencies.Select(f => (float)f).ToArray();
    }

    /// <summary>Llama 3.1: long wavelengths are divided by the factor, short ones kept, the band between interpolated.</summary>
    private static double Llama3(double frequency, RopeScaling scaling)
    {
        var lowFrequencyWavelength = scaling.OriginalMaxPositionEmbeddings / scaling.LowFrequencyFactor;
        var highFrequencyWavelength = scaling.OriginalMaxPositionEmbeddings / scaling.HighFrequencyFactor;
        var wavelength = 2 * Math.PI / frequency;
        if (wavelength < highFrequencyWavelength) return frequency;
        if (wavelength > lowFrequencyWavelength) return frequency / scaling.Factor;
        var smooth = (scaling.OriginalMaxPositionEmbeddings / wavelength - scaling.LowFrequencyFactor)
            / (scaling.HighFrequencyFactor - scaling.LowFrequencyFactor);
        return (1 - smooth) * frequency / scaling.Factor + smooth * frequency;
    }

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
