using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using static TorchSharp.torch;

namespace FineTuneService.Ml.SafeTensors;

/// <summary>Writes tensors to a safetensors file: u64 header length, JSON header padded to 8 bytes, raw data.</summary>
public static class SafeTensorsWriter
{
    /// <summary>Metadata that Hugging Face tooling writes and expects.</summary>
    public static readonly IReadOnlyDictionary<string, string> PyTorchFormat = new Dictionary<string, string> { ["format"] = "pt" };

    /// <summary>
    /// Writes <paramref name="tensors"/> in name order. Tensors may live on any device and be non-contiguous;
    /// they are copied to CPU one at a time.
    /// </summary>
    public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var ordered = tensors.OrderBy(t => t.Key, StringComparer.Ordinal).ToList();
        var header = BuildHeader(ordered, metadata ?? PyTorchFormat);

        var temporary = path + ".tmp";
        using (var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            Span<byte> lengthBytes = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(lengthBytes, (ulong)header.Length);
            stream.Write(lengthBytes);
            stream.Write(header);
            foreach (var (_, tensor) in ordered) TensorBytes.WriteTo(tensor, stream);
        }
        // Readers never see a half-written file under the final name.
        File.Move(temporary, path, overwrite: true);
    }

    /// <summary>Total bytes of the tensor data (without header).</summary>
    public static long DataBytes(IEnumerable<Tensor> tensors) => tensors.Sum(t => t.numel() * t.ElementSize);

    private static byte[] BuildHeader(IReadOnlyList<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (metadata.Count > 0)
            {
                json.WriteStartObject(SafeTensorsFile.MetadataKey);
                foreach (var (key, value) in metadata.OrderBy(m => m.Key, StringComparer.Ordinal)) json.WriteString(key, value);
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, tensor) in tensors)
            {
                if (name == SafeTensorsFile.MetadataKey)
                    throw new ArgumentException($"'{name}' is reserved and cannot name a tensor.", nameof(tensors));
                var bytes = tensor.numel() * tensor.ElementSize;
                json.WriteStartObject(name);
                json.WriteString("dtype", SafeTensorDTypes.FromScalarType(tensor.dtype).ToString());
                json.WriteStartArray("shape");
                foreach (var dimension in tensor.shape) json.WriteNumberValue(dimension);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + bytes);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += bytes;
            }
            json.WriteEndObject();
        }
        // Pad with spaces so the data section starts 8-byte aligned.
        var padding = (int)((8 - buffer.Length % 8) % 8);
        buffer.Write(Encoding.ASCII.GetBytes(new string(' ', padding)));
        return buffer.ToArray();
    }
}
