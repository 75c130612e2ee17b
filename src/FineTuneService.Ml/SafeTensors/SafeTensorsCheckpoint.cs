using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace FineTuneService.Ml.SafeTensors;

/// <summary>
/// A checkpoint in Hugging Face layout: one <c>{prefix}.safetensors</c>, or shards
/// <c>{prefix}-00001-of-0000N.safetensors</c> with a <c>{prefix}.safetensors.index.json</c> weight map.
/// </summary>
public sealed class SafeTensorsCheckpoint : IDisposable
{
    /// <summary>Default shard size, as in transformers' save_pretrained.</summary>
    public const long DefaultMaxShardBytes = 5L * 1024 * 1024 * 1024;

    private readonly IReadOnlyList<SafeTensorsFile> _files;
    private readonly Dictionary<string, SafeTensorsFile> _fileByTensor;

    private SafeTensorsCheckpoint(IReadOnlyList<SafeTensorsFile> files, Dictionary<string, SafeTensorsFile> fileByTensor)
    {
        _files = files;
        _fileByTensor = fileByTensor;
    }

    public static string SingleFileName(string prefix = "model") => $"{prefix}.safetensors";
    public static string IndexFileName(string prefix = "model") => $"{prefix}.safetensors.index.json";

    /// <summary>Whether <paramref name="directory"/> holds a single-file or sharded checkpoint with this prefix.</summary>
    public static bool Exists(string directory, string prefix = "model") =>
        System.IO.File.Exists(Path.Combine(directory, SingleFileName(prefix))) || System.IO.File.Exists(Path.Combine(directory, IndexFileName(prefix)));

    /// <summary>Tensor names across all shards.</summary>
    public IReadOnlyCollection<string> Names => _fileByTensor.Keys;

    public SafeTensorInfo Info(string name) => FileOf(name).Info(name);
    public Tensor Load(string name) => FileOf(name).Load(name);
    public void CopyTo(string name, Tensor destination) => FileOf(name).CopyTo(name, destination);
    public Dictionary<string, Tensor> LoadAll() => _fileByTensor.Keys.ToDictionary(n => n, Load);

    private SafeTensorsFile FileOf(string name) =>
        _fileByTensor.TryGetValue(name, out var file) ? file : throw new KeyNotFoundException($"Checkpoint has no tensor named '{name}'.");

    /// <summary>Opens a checkpoint; a sharded index wins over a single file when both exist.</summary>
    public static SafeTensorsCheckpoint Open(string directory, string prefix = "model")
    {
        var indexPath = Path.Combine(directory, IndexFileName(prefix));
        if (System.IO.File.Exists(indexPath)) return OpenSharded(directory, indexPath);

        var singlePath = Path.Combine(directory, SingleFileName(prefix));
        if (!System.IO.File.Exists(singlePath))
            throw new FileNotFoundException($"No {SingleFileName(prefix)} or {IndexFileName(prefix)} in {directory}.", singlePath);
        var file = SafeTensorsFile.Open(singlePath);
        return new SafeTensorsCheckpoint([file], file.Tensors.Keys.ToDictionary(n => n, _ => file));
    }

    private static SafeTensorsCheckpoint OpenSharded(string directory, string indexPath)
    {
        var weightMap = ReadWeightMap(indexPath);
        var files = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
        try
        {
            foreach (var shard in weightMap.Values.Distinct())
            {
                if (Path.GetFileName(shard) != shard)
                    throw new SafeTensorsFormatException($"{indexPath}: shard name '{shard}' must be a plain file name.");
                files[shard] = SafeTensorsFile.Open(Path.Combine(directory, shard));
            }
            var byTensor = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
            foreach (var (tensor, shard) in weightMap)
            {
                var file = files[shard];
                if (!file.Tensors.ContainsKey(tensor))
                    throw new SafeTensorsFormatException($"{indexPath}: weight_map puts '{tensor}' in {shard}, which does not contain it.");
                byTensor[tensor] = file;
            }
            return new SafeTensorsCheckpoint(files.Values.ToList(), byTensor);
        }
        catch
        {
            foreach (var file in files.Values) file.Dispose();
            throw;
        }
    }

    /// <summary>Reads the weight_map (tensor name to shard file) of an index file.</summary>
    public static IReadOnlyDictionary<string, string> ReadWeightMap(string indexPath)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(System.IO.File.ReadAllText(indexPath));
        }
        catch (JsonException e)
        {
            throw new SafeTensorsFormatException($"{indexPath}: not valid JSON ({e.Message}).");
        }
        if (root?["weight_map"] is not JsonObject map)
            throw new SafeTensorsFormatException($"{indexPath}: missing \"weight_map\" object.");
        return map.ToDictionary(
            p => p.Key,
            p => p.Value is JsonValue v && v.TryGetValue<string>(out var shard)
                ? shard
                : throw new SafeTensorsFormatException($"{indexPath}: weight_map entry '{p.Key}' must be a file name."),
            StringComparer.Ordinal);
    }

    /// <summary>
    /// Saves tensors as one file when their data fits in <paramref name="maxShardBytes"/>, otherwise as shards with an index.
    /// Previous weight files with the same prefix are removed first. Returns the written file names.
    /// </summary>
    public static IReadOnlyList<string> Save(string directory, IReadOnlyDictionary<string, Tensor> tensors,
        long maxShardBytes = DefaultMaxShardBytes, string prefix = "model")
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxShardBytes);
        Directory.CreateDirectory(directory);
        DeleteExisting(directory, prefix);

        var ordered = tensors.OrderBy(t => t.Key, StringComparer.Ordinal).ToList();
        var shards = new List<List<KeyValuePair<string, Tensor>>> { new() };
        long current = 0, total = 0;
        foreach (var entry in ordered)
        {
            var bytes = entry.Value.numel() * entry.Value.ElementSize;
            if (current > 0 && current + bytes > maxShardBytes)
            {
                shards.Add([]);
                current = 0;
            }
            shards[^1].Add(entry);
            current += bytes;
            total += bytes;
        }

        if (shards.Count == 1)
        {
            SafeTensorsWriter.Save(Path.Combine(directory, SingleFileName(prefix)), ordered);
            return [SingleFileName(prefix)];
        }

        var names = new List<string>();
        var weightMap = new JsonObject();
        for (var i = 0; i < shards.Count; i++)
        {
            var name = $"{prefix}-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
            SafeTensorsWriter.Save(Path.Combine(directory, name), shards[i]);
            foreach (var (tensor, _) in shards[i]) weightMap[tensor] = name;
            names.Add(name);
        }
        var index = new JsonObject
        {
            ["metadata"] = new JsonObject { ["total_size"] = total },
            ["weight_map"] = weightMap,
        };
        System.IO.File.WriteAllText(Path.Combine(directory, IndexFileName(prefix)), index.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        names.Add(IndexFileName(prefix));
        return names;
    }

    private static void DeleteExisting(string directory, string prefix)
    {
        var index = Path.Combine(directory, IndexFileName(prefix));
        if (System.IO.File.Exists(index)) System.IO.File.Delete(index);
        var single = Path.Combine(directory, SingleFileName(prefix));
        if (System.IO.File.Exists(single)) System.IO.File.Delete(single);
        foreach (var shard in Directory.EnumerateFiles(directory, $"{prefix}-*-of-*.safetensors")) System.IO.File.Delete(shard);
    }

    public void Dispose()
    {
        foreach (var file in _files) file.Dispose();
    }
}
