using TorchSharp;
using static TorchSharp.torch;

namespace FineTuneService.Ml.SafeTensors;

/// <summary>Raw byte copies between native memory and CPU tensors, chunked so tensors over 2 GiB work too.</summary>
internal static unsafe class TensorBytes
{
    private const long ChunkBytes = 1L << 30;

    /// <summary>Copies <paramref name="length"/> bytes at <paramref name="source"/> into a contiguous CPU tensor.</summary>
    public static void CopyInto(byte* source, long length, Tensor destination)
    {
        if (destination.device_type != DeviceType.CPU || !destination.is_contiguous())
            throw new ArgumentException("Destination must be a contiguous CPU tensor.", nameof(destination));
        var expected = destination.numel() * destination.ElementSize;
        if (expected != length)
            throw new ArgumentException($"Destination holds {expected} bytes, source has {length}.", nameof(destination));
        if (length == 0) return;

        using var scope = NewDisposeScope();
        var flat = destination.view(-1);
        var elementsPerChunk = ChunkBytes / destination.ElementSize;
        for (long start = 0; start < flat.shape[0]; start += elementsPerChunk)
        {
            var count = Math.Min(elementsPerChunk, flat.shape[0] - start);
            var target = flat.narrow(0, start, count).bytes;
            new ReadOnlySpan<byte>(source + start * destination.ElementSize, target.Length).CopyTo(target);
        }
    }

    /// <summary>Writes the raw little-endian bytes of a tensor (any device, any layout) to a stream.</summary>
    public static void WriteTo(Tensor tensor, Stream stream)
    {
        if (tensor.numel() == 0) return;
        using var scope = NewDisposeScope();
        var flat = tensor.detach().cpu().contiguous().view(-1);
        var elementsPerChunk = ChunkBytes / flat.ElementSize;
        for (long start = 0; start < flat.shape[0]; start += elementsPerChunk)
        {
            var count = Math.Min(elementsPerChunk, flat.shape[0] - start);
            stream.Write(flat.narrow(0, start, count).bytes);
        }
    }
}
