using System.IO.MemoryMappedFiles;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace FineTuneService.Ml.SafeTensors;

/// <summary>
/// A memory-mapped safetensors file. The header is validated on open; tensor data is copied straight from the
/// mapping into tensor memory, so the file is never read into managed memory as a whole.
/// </summary>
public sealed unsafe class SafeTensorsFile : IDisposable
{
    /// <summary>Upper bound of the JSON header, as in the reference implementation.</summary>
    public const long MaxHeaderBytes = 100L * 1024 * 1024;
    public const string MetadataKey = "__metadata__";

    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private byte* _base;
    private readonly long _dataStart;

    private SafeTensorsFile(string path, MemoryMappedFile map, MemoryMappedViewAccessor view, byte* basePointer,
        long dataStart, IReadOnlyDictionary<string, SafeTensorInfo> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        Path = path;
        _map = map;
        _view = view;
        _base = basePointer;
        _dataStart = dataStart;
        Tensors = tensors;
        Metadata = metadata;
    }

    public string Path { get; }

    /// <summary>Header entries by tensor name.</summary>
    public IReadOnlyDictionary<string, SafeTensorInfo> Tensors { get; }

    /// <summary>The string-to-string "__metadata__" of the header (empty when absent).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Maps and validates a file; throws <see cref="SafeTensorsFormatException"/> when it is malformed.</summary>
    public static SafeTensorsFile Open(string path)
    {
        var length = new FileInfo(path).Length;
        if (length < 8)
            throw new SafeTensorsFormatException($"{path}: {length} bytes is too short for a safetensors file (8-byte header length missing).");

        var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, mapName: null, capacity: 0, MemoryMappedFileAccess.Read);
        MemoryMappedViewAccessor? view = null;
        try
        {
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* pointer = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            pointer += view.PointerOffset;
            try
            {
                var (dataStart, tensors, metadata) = ParseHeader(path, pointer, length);
                return new SafeTensorsFile(path, map, view, pointer, dataStart, tensors, metadata);
            }
            catch
            {
                view.SafeMemoryMappedViewHandle.ReleasePointer();
                throw;
            }
        }
        catch
        {
            view?.Dispose();
            map.Dispose();
            throw;
        }
    }

    /// <summary>Creates a new CPU tensor holding a copy of the named tensor.</summary>
    public Tensor Load(string name)
    {
        var info = Info(name);
        var tensor = empty(info.Shape, info.DType.ToScalarType());
        TensorBytes.CopyInto(DataPointer(info), info.ByteLength, tensor);
        return tensor;
    }

    /// <summary>
    /// Copies the named tensor into an existing tensor of the same shape (for example a model parameter),
    /// converting the element type and device if they differ. Gradients are not tracked.
    /// </summary>
    public void CopyTo(string name, Tensor destination)
    {
        var info = Info(name);
        if (!destination.shape.SequenceEqual(info.Shape))
            throw new InvalidOperationException(
                $"{Path}: tensor '{name}' has shape [{string.Join(", ", info.Shape)}] but the destination has [{string.Join(", ", destination.shape)}].");

        using var noGrad = no_grad();
        if (destination.dtype == info.DType.ToScalarType() && destination.device_type == DeviceType.CPU && destination.is_contiguous())
        {
            TensorBytes.CopyInto(DataPointer(info), info.ByteLength, destination);
            return;
        }
        using var loaded = Load(name);
        destination.copy_(loaded);
    }

    /// <summary>Loads every tensor into new CPU tensors.</summary>
    public Dictionary<string, Tensor> LoadAll() => Tensors.Keys.ToDictionary(name => name, Load);

    public SafeTensorInfo Info(string name) =>
        Tensors.TryGetValue(name, out var info)
            ? info
            : throw new KeyNotFoundException($"{Path}: no tensor named '{name}'.");

    private byte* DataPointer(SafeTensorInfo info)
    {
        ObjectDisposedException.ThrowIf(_base is null, this);
        return _base + _dataStart + info.Begin;
    }

    public void Dispose()
    {
        if (_base is null) return;
        _base = null;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }

    private static (long DataStart, IReadOnlyDictionary<string, SafeTensorInfo> Tensors, IReadOnlyDictionary<string, string> Metadata)
        ParseHeader(string path, byte* pointer, long fileLength)
    {
        var headerLength = *(ulong*)pointer;
        if (!BitConverter.IsLittleEndian) headerLength = System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(headerLength);
        if (headerLength == 0 || headerLength > (ulong)Math.Min(MaxHeaderBytes, fileLength - 8))
            throw new SafeTensorsFormatException(
                $"{path}: header length {headerLength} is invalid for a file of {fileLength} bytes (must be 1..{Math.Min(MaxHeaderBytes, fileLength - 8)}).");

        var dataStart = 8 + (long)headerLength;
        var dataLength = fileLength - dataStart;
        var headerBytes = new ReadOnlySpan<byte>(pointer + 8, (int)headerLength).ToArray();

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(headerBytes);
        }
        catch (JsonException e)
        {
            throw new SafeTensorsFormatException($"{path}: header is not valid JSON ({e.Message}).");
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new SafeTensorsFormatException($"{path}: header must be a JSON object.");

            var tensors = new Dictionary<string, SafeTensorInfo>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (property.Name == MetadataKey)
                {
                    ReadMetadata(path, property.Value, metadata);
                    continue;
                }
                var info = ReadEntry(path, property.Name, property.Value);
                if (info.End > dataLength)
                    throw new SafeTensorsFormatException(
                        $"{path}: tensor '{info.Name}' data_offsets [{info.Begin}, {info.End}] exceed the data section of {dataLength} bytes.");
                if (!tensors.TryAdd(info.Name, info))
                    throw new SafeTensorsFormatException($"{path}: tensor '{info.Name}' appears twice in the header.");
            }

            SafeTensorInfo? previous = null;
            foreach (var info in tensors.Values.Where(t => t.ByteLength > 0).OrderBy(t => t.Begin))
            {
                if (previous is not null && info.Begin < previous.End)
                    throw new SafeTensorsFormatException(
                        $"{path}: tensors '{previous.Name}' [{previous.Begin}, {previous.End}] and '{info.Name}' [{info.Begin}, {info.End}] overlap.");
                previous = info;
            }
            return (dataStart, tensors, metadata);
        }
    }

    private static SafeTensorInfo ReadEntry(string path, string name, JsonElement entry)
    {
        if (entry.ValueKind != JsonValueKind.Object)
            throw new SafeTensorsFormatException($"{path}: header entry '{name}' must be an object.");
        if (!entry.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw new SafeTensorsFormatException($"{path}: tensor '{name}' has no dtype.");
        var dtype = SafeTensorDTypes.Parse(dtypeElement.GetString()!, $"{path}: tensor '{name}'");

        if (!entry.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw new SafeTensorsFormatException($"{path}: tensor '{name}' has no shape array.");
        var shape = shapeElement.EnumerateArray()
            .Select(d => d.ValueKind == JsonValueKind.Number && d.TryGetInt64(out var v) && v >= 0
                ? v
                : throw new SafeTensorsFormatException($"{path}: tensor '{name}' has an invalid shape dimension {d}."))
            .ToArray();

        if (!entry.TryGetProperty("data_offsets", out var offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2
            || !offsets[0].TryGetInt64(out var begin) || !offsets[1].TryGetInt64(out var end))
            throw new SafeTensorsFormatException($"{path}: tensor '{name}' needs data_offsets [begin, end].");
        if (begin < 0 || end < begin)
            throw new SafeTensorsFormatException($"{path}: tensor '{name}' has invalid data_offsets [{begin}, {end}].");

        var info = new SafeTensorInfo(name, dtype, shape, begin, end);
        long expected;
        try
        {
            expected = checked(info.ElementCount * dtype.ElementSize());
        }
        catch (OverflowException)
        {
            throw new SafeTensorsFormatException($"{path}: tensor '{name}' shape is too large.");
        }
        if (expected != info.ByteLength)
            throw new SafeTensorsFormatException(
                $"{path}: tensor '{name}' ({dtype}, shape [{string.Join(", ", shape)}]) needs {expected} bytes but data_offsets span {info.ByteLength}.");
        return info;
    }

    private static void ReadMetadata(string path, JsonElement element, Dictionary<string, string> metadata)
    {
        if (element.ValueKind == JsonValueKind.Null) return;
        if (element.ValueKind != JsonValueKind.Object)
            throw new SafeTensorsFormatException($"{path}: {MetadataKey} must be an object of strings.");
        foreach (var item in element.EnumerateObject())
        {
            metadata[item.Name] = item.Value.ValueKind == JsonValueKind.String
                ? item.Value.GetString()!
                : throw new SafeTensorsFormatException($"{path}: {MetadataKey} value '{item.Name}' must be a string.");
        }
    }
}
