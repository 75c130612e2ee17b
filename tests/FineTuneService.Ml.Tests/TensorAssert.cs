using static TorchSharp.torch;

namespace FineTuneService.Ml.Tests;

internal static class TensorAssert
{
    /// <summary>Same dtype, shape and raw bytes.</summary>
    public static bool BitIdentical(Tensor a, Tensor b)
    {
        if (a.dtype != b.dtype || !a.shape.SequenceEqual(b.shape)) return false;
        using var ca = a.detach().cpu().contiguous();
        using var cb = b.detach().cpu().contiguous();
        return ca.bytes.SequenceEqual(cb.bytes);
    }

    public static void Identical(Tensor expected, Tensor actual, string? because = null) =>
        Assert.True(BitIdentical(expected, actual), because ?? "tensors differ");
}
