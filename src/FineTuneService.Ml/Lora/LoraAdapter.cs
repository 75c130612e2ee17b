using FineTuneService.Ml.Models;
using FineTuneService.Ml.SafeTensors;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Lora;

/// <summary>
/// Injects, merges, saves and loads LoRA adapters on a <see cref="DecoderLM"/>. Files are PEFT's:
/// <c>adapter_config.json</c> and <c>adapter_model.safetensors</c> with keys prefixed <c>base_model.model.</c>.
/// A full fine-tune is simply a model without adapters.
/// </summary>
public static class LoraAdapter
{
    public const string ConfigFileName = "adapter_config.json";
    public const string WeightsFileName = "adapter_model.safetensors";
    public const string PeftKeyPrefix = "base_model.model.";

    /// <summary>
    /// Wraps every targeted projection in a <see cref="LoraLinear"/> and freezes all other parameters.
    /// Returns the adapted module paths. A given <paramref name="seed"/> gives the same A matrices.
    /// </summary>
    public static IReadOnlyList<string> Inject(DecoderLM model, LoraConfig config, long seed = 0)
    {
        config.Validate();
        if (Adapters(model).Any()) throw new InvalidOperationException("The model already has LoRA adapters.");

        using var generator = new Generator((ulong)seed);
        var adapted = new List<string>();
        foreach (var layer in model.Layers)
        {
            foreach (var host in new IProjectionHost[] { layer.SelfAttention, layer.Mlp })
            foreach (var name in host.ProjectionNames)
            {
                var path = DecoderKeys.Projection(layer.Index, name);
                if (!config.Targets(path)) continue;
                var baseLayer = host.GetProjection(name) as Linear
                    ?? throw new InvalidOperationException($"{path} is not a plain linear layer.");
                host.SetProjection(name, new LoraLinear(baseLayer, config.Rank, config.Scaling, config.Dropout, generator));
                adapted.Add(path);
            }
        }
        if (adapted.Count == 0) throw new InvalidOperationException("LoRA target_modules matched no projection of the model.");

        foreach (var (name, parameter) in model.named_parameters())
            parameter.requires_grad = IsLoraKey(name);
        return adapted;
    }

    /// <summary>The LoRA-wrapped projections with their module paths.</summary>
    public static IEnumerable<(string Name, LoraLinear Module)> Adapters(DecoderLM model) =>
        model.Projections().Where(p => p.Module is LoraLinear).Select(p => (p.Name, (LoraLinear)p.Module));

    /// <summary>Parameters that training updates: the LoRA factors.</summary>
    public static IReadOnlyList<Parameter> TrainableParameters(DecoderLM model) =>
        model.named_parameters().Where(p => IsLoraKey(p.name)).Select(p => p.parameter).ToList();

    public static bool IsLoraKey(string name) => name.Contains(".lora_A.", StringComparison.Ordinal) || name.Contains(".lora_B.", StringComparison.Ordinal);

    /// <summary>
    /// Folds every adapter into its base weight and puts plain linear layers back, so the model saves as an
    /// ordinary checkpoint. All parameters become trainable again.
    /// </summary>
    public static void MergeAndUnload(DecoderLM model)
    {
        foreach (var layer in model.Layers)
        foreach (var host in new IProjectionHost[] { layer.SelfAttention, layer.Mlp })
        foreach (var name in host.ProjectionNames)
        {
            if (host.GetProjection(name) is not LoraLinear lora) continue;
            host.SetProjection(name, lora.ToMergedLinear());
            lora.Dispose();
        }
        foreach (var parameter in model.parameters()) parameter.requires_grad = true;
    }

    /// <summary>
    /// The model's weights with every adapter folded in, under plain Hugging Face keys (no lora_A/lora_B), as
    /// <see cref="MergeAndUnload"/> would leave them; the model stays as it is, so training can go on.
    /// </summary>
    public static Dictionary<string, Tensor> MergedStateDict(DecoderLM model)
    {
        var adapters = Adapters(model).Where(a => !a.Module.Merged).ToDictionary(a => a.Name + ".weight", a => a.Module);
        return model.state_dict().Where(p => !IsLoraKey(p.Key)).ToDictionary(
            p => p.Key,
            p => adapters.TryGetValue(p.Key, out var lora) ? p.Value.detach() + lora.Delta() : p.Value);
    }

    /// <summary>Adapter tensors under PEFT keys ("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight").</summary>
    public static Dictionary<string, Tensor> AdapterStateDict(DecoderLM model) =>
        model.state_dict().Where(p => IsLoraKey(p.Key)).ToDictionary(p => PeftKeyPrefix + p.Key, p => p.Value);

    /// <summary>Writes adapter_config.json and adapter_model.safetensors (in the adapters' own dtype unless given).</summary>
    public static void Save(DecoderLM model, LoraConfig config, string directory, ScalarType? dtype = null)
    {
        var tensors = AdapterStateDict(model);
        if (tensors.Count == 0) throw new InvalidOperationException("The model has no LoRA adapters to save.");
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, ConfigFileName), config.ToJson());

        using var scope = NewDisposeScope();
        var converted = tensors.ToDictionary(t => t.Key, t => dtype is { } d && t.Value.dtype != d ? t.Value.to_type(d) : t.Value);
        SafeTensorsWriter.Save(Path.Combine(directory, WeightsFileName), converted);
    }

    public static LoraConfig LoadConfig(string directory)
    {
        var path = Path.Combine(directory, ConfigFileName);
        return LoraConfig.FromJson(File.ReadAllText(path), path);
    }

    /// <summary>Injects the adapters described in <paramref name="directory"/> and loads their weights.</summary>
    public static LoraConfig Load(DecoderLM model, string directory)
    {
        var config = LoadConfig(directory);
        var weightsPath = Path.Combine(directory, WeightsFileName);
        using var file = SafeTensorsFile.Open(weightsPath);

        // Check before touching the model, so a mismatched adapter leaves it as it was.
        var expected = model.Projections().Select(p => p.Name).Where(config.Targets)
            .SelectMany(path => new[] { $"{path}.lora_A.weight", $"{path}.lora_B.weight" })
            .ToList();
        var missing = expected.Where(k => !file.Tensors.ContainsKey(PeftKeyPrefix + k)).ToList();
        var unexpected = file.Tensors.Keys.Except(expected.Select(k => PeftKeyPrefix + k)).ToList();
        if (missing.Count > 0 || unexpected.Count > 0)
            throw new InvalidDataException(
                $"{weightsPath}: adapter does not match the model and {ConfigFileName}. Missing: [{string.Join(", ", missing.Take(5))}]; unexpected: [{string.Join(", ", unexpected.Take(5))}].");

        Inject(model, config);
        var parameters = model.state_dict();
        foreach (var key in expected) file.CopyTo(PeftKeyPrefix + key, parameters[key]);
        return config;
    }
}
