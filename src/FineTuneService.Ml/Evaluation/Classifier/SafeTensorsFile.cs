using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace FineTuneService.Ml.Evaluation.Classifier;

/// <summary>
/// Minimal safetensors reader/writer for float32 tensors plus string metadata (the format: little-endian u64 header
/// length, JSON header, raw data). Enough for the harm classifier's weights; models use the engine's own loader.
/// </summary>
internal static class SafeTensorsFile
{
    public static void WriteF32(string path, IReadOnlyDictionary<string, (long[] Shape, float[] Data)> tensors,
        IReadOnlyDictionary<string, string> metadata)
    {
        var header = new JsonObject { ["__metadata__"] = new JsonObject(metadata.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))) };
        long offset = 0;
        foreach (var (name, (shape, data)) in tensors.OrderBy(t => t.Key, StringComparer.Ordinal))
        {
            var bytes = (long)data.Length * sizeof(float);
            header[name] = new JsonObject
            {
                ["dtype"] = "F32",
                ["shape"] = new JsonArray(shape.Select(s => (JsonNode?)s).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }
        var headerBytes = Encoding.UTF8.GetBytes(header.ToJsonString());
        var padded = (headerBytes.Length + 7) / 8 * 8; // 8-byte alignment as the reference writer does
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        using var stream = File.Create(path);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)padded);
        stream.Write(length);
        stream.Write(headerBytes);
        for (var i = headerBytes.Length; i < padded; i++) stream.WriteByte((byte)' ');
        foreach (var (_, (_, data)) in tensors.OrderBy(t => t.Key, StringComparer.Ordinal))
            stream.Write(MemoryMarshal.AsBytes(data.AsSpan()));
    }

    public static (Dictionary<string, (long[] Shape, float[] Data)> Tensors, Dictionary<string, string> Metadata) ReadF32(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 8) throw new InvalidDataException($"{path}: not a safetensors file (too short).");
        var headerLength = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        if (headerLength <= 0 || 8 + headerLength > bytes.Length)
            throw new InvalidDataException($"{path}: not a safetensors file (bad header length {headerLength}).");
        var header = JsonNode.Parse(bytes.AsSpan(8, (int)headerLength))?.AsObject()
            ?? throw new InvalidDataException($"{path}: empty safetensors header.");
        var dataStart = 8 + (int)headerLength;

        var tensors = new Dictionary<string, (long[], float[])>();
        var metadata = new Dictionary<string, string>();
        foreach (var (name, node) in header)
        {
            if (name == "__metadata__")
            {
                foreach (var (key, value) in node!.AsObject()) metadata[key] = value!.GetValue<string>();
                continue;
            }
            var dtype = node!["dtype"]!.GetValue<string>();
            if (dtype != "F32") throw new InvalidDataException($"{path}: tensor '{name}' is {dtype}; only F32 is supported here.");
            var shape = node["shape"]!.AsArray().Select(s => s!.GetValue<long>()).ToArray();
            var offsets = node["data_offsets"]!.AsArray().Select(s => s!.GetValue<long>()).ToArray();
            var span = bytes.AsSpan(dataStart + (int)offsets[0], (int)(offsets[1] - offsets[0]));
            tensors[name] = (shape, MemoryMarshal.Cast<byte, float>(span).ToArray());
        }
        return (tensors, metadata);
    }
}
