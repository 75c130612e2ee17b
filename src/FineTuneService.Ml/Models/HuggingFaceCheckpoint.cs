using FineTuneService.Ml.SafeTensors;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Models;

/// <summary>A decoder loaded from a Hugging Face model folder, with its generation config.</summary>
public sealed record LoadedModel(DecoderLM Model, GenerationConfig Generation, string Directory);

/// <summary>
/// Reads and writes Hugging Face model folders: <c>config.json</c>, <c>generation_config.json</c> and
/// <c>model.safetensors</c> (or shards with an index). Tokenizer and other files are left alone or copied.
/// </summary>
public static class HuggingFaceCheckpoint
{
    public const string ConfigFileName = "config.json";
    public const string GenerationConfigFileName = "generation_config.json";

    /// <summary>
    /// Loads a model. <paramref name="dtype"/> defaults to the stored torch_dtype; weights are copied from the
    /// memory-mapped files straight into the parameters.
    /// </summary>
    public static LoadedModel Load(string directory, ScalarType? dtype = null, Device? device = null)
    {
        var config = DecoderConfig.Load(Path.Combine(directory, ConfigFileName));
        var generationPath = Path.Combine(directory, GenerationConfigFileName);
        var generation = File.Exists(generationPath) ? GenerationConfig.Load(generationPath) : GenerationConfig.From(config);

        var model = new DecoderLM(config).To(dtype ?? config.StorageDType);
        try
        {
            using var checkpoint = SafeTensorsCheckpoint.Open(directory);
            LoadWeights(model, checkpoint, directory);
            if (device is not null) model.To(model.DType, device);
            return new LoadedModel(model, generation, directory);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Copies every parameter from a checkpoint; missing or unexpected keys are an error.</summary>
    public static void LoadWeights(DecoderLM model, SafeTensorsCheckpoint checkpoint, string source)
    {
        var parameters = model.state_dict();
        var missing = parameters.Keys.Where(k => !checkpoint.Names.Contains(k)).ToList();
        // Some exports keep lm_head.weight although embeddings are tied; it is redundant then.
        var unexpected = checkpoint.Names.Where(k => !parameters.ContainsKey(k) && !(k == DecoderKeys.LmHead && model.Config.TieWordEmbeddings)).ToList();
        if (missing.Count > 0 || unexpected.Count > 0)
            throw new InvalidDataException(
                $"{source}: checkpoint does not match the configured architecture. Missing: [{string.Join(", ", missing.Take(10))}]{(missing.Count > 10 ? "..." : "")}; " +
                $"unexpected: [{string.Join(", ", unexpected.Take(10))}]{(unexpected.Count > 10 ? "..." : "")}.");
        foreach (var (name, parameter) in parameters) checkpoint.CopyTo(name, parameter);
    }

    /// <summary>
    /// Saves config.json (torch_dtype updated), generation_config.json and the weights in <paramref name="dtype"/>
    /// (default: the model's), sharded above <paramref name="maxShardBytes"/>. When <paramref name="copyOtherFilesFrom"/>
    /// is set, the other files of that folder (tokenizer, chat template, licence) are copied along.
    /// </summary>
    public static IReadOnlyList<string> Save(DecoderLM model, string directory, GenerationConfig? generation = null,
        ScalarType? dtype = null, long maxShardBytes = SafeTensorsCheckpoint.DefaultMaxShardBytes, string? copyOtherFilesFrom = null)
    {
        // A wrapped projection would add non-HF keys (lora_A/lora_B) that transformers cannot load.
        var wrapped = model.Projections().FirstOrDefault(p => p.Module is not TorchSharp.Modules.Linear);
        if (wrapped.Module is not null)
            throw new InvalidOperationException(
                $"{wrapped.Name} is wrapped ({wrapped.Module.GetType().Name}); merge adapters into the weights (LoraAdapter.MergeAndUnload) " +
                "or save them as an adapter (LoraAdapter.Save) instead.");

        return Save(model.Config, model.state_dict(), directory, generation, dtype ?? model.DType, maxShardBytes, copyOtherFilesFrom);
    }

    /// <summary>
    /// Saves a model folder from <paramref name="weights"/> under Hugging Face keys, e.g. a LoRA model's merged view
    /// (<c>LoraAdapter.MergedStateDict</c>) while the model itself stays wrapped for training.
    /// </summary>
    public static IReadOnlyList<string> Save(DecoderConfig modelConfig, IEnumerable<KeyValuePair<string, Tensor>> weights, string directory,
        GenerationConfig? generation, ScalarType dtype, long maxShardBytes = SafeTensorsCheckpoint.DefaultMaxShardBytes,
        string? copyOtherFilesFrom = null)
    {
        Directory.CreateDirectory(directory);
        var config = modelConfig with { TorchDtype = DTypeName(dtype) };
        config.Save(Path.Combine(directory, ConfigFileName));
        (generation ?? GenerationConfig.From(config)).Save(Path.Combine(directory, GenerationConfigFileName));

        using var scope = NewDisposeScope();
        var tensors = weights.ToDictionary(p => p.Key, p => p.Value.dtype == dtype ? p.Value : p.Value.to_type(dtype));
        var written = SafeTensorsCheckpoint.Save(directory, tensors, maxShardBytes).ToList();

        if (copyOtherFilesFrom is not null && Path.GetFullPath(copyOtherFilesFrom) != Path.GetFullPath(directory))
        {
            foreach (var file in Directory.EnumerateFiles(copyOtherFilesFrom).Where(IsCopiedAlong))
            {
                var target = Path.Combine(directory, Path.GetFileName(file));
                File.Copy(file, target, overwrite: true);
                written.Add(Path.GetFileName(file));
            }
        }
        return [ConfigFileName, GenerationConfigFileName, .. written];
    }

    /// <summary>Files a model folder carries besides config and weights (tokenizer, templates, readme).</summary>
    private static bool IsCopiedAlong(string path)
    {
        var name = Path.GetFileName(path);
        return name is not (ConfigFileName or GenerationConfigFileName)
            && !name.EndsWith(".safetensors", StringComparison.Ordinal)
            && !name.EndsWith(".safetensors.index.json", StringComparison.Ordinal)
            && !name.EndsWith(".bin", StringComparison.Ordinal)
            && !name.EndsWith(".tmp", StringComparison.Ordinal);
    }

    public static string DTypeName(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => "float32",
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Float16 => "float16",
        _ => throw new NotSupportedException($"Model weights cannot be stored as {dtype} (float32, float16, bfloat16)."),
    };
}
