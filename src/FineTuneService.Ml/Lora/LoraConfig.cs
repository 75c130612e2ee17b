using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using FineTuneService.Contracts.Jobs;
using FineTuneService.Ml.Models;

namespace FineTuneService.Ml.Lora;

/// <summary>
/// LoRA settings, serialised as a PEFT <c>adapter_config.json</c> so adapters are interchangeable with PEFT.
/// <see cref="TargetModules"/> are projection names (q_proj, ..., down_proj); PEFT's "all-linear" selects all of them.
/// </summary>
public sealed record LoraConfig
{
    public const string AllLinear = DecoderProjections.AllLinear;

    /// <summary>The request contract's defaults, so an adapter built without a request has the same ones.</summary>
    private static readonly LoraSettings Defaults = new();

    [JsonPropertyName("peft_type")] public string PeftType { get; init; } = "LORA";
    [JsonPropertyName("task_type")] public string TaskType { get; init; } = "CAUSAL_LM";
    [JsonPropertyName("r")] public int Rank { get; init; } = Defaults.Rank;
    [JsonPropertyName("lora_alpha")] public double Alpha { get; init; } = Defaults.Alpha;
    [JsonPropertyName("lora_dropout")] public double Dropout { get; init; } = Defaults.Dropout;
    [JsonPropertyName("use_rslora")] public bool UseRsLora { get; init; }
    [JsonPropertyName("bias")] public string Bias { get; init; } = "none";
    [JsonPropertyName("fan_in_fan_out")] public bool FanInFanOut { get; init; }
    [JsonPropertyName("init_lora_weights")] public bool InitLoraWeights { get; init; } = true;
    [JsonPropertyName("inference_mode")] public bool InferenceMode { get; init; } = true;
    [JsonPropertyName("use_dora")] public bool UseDora { get; init; }
    [JsonPropertyName("base_model_name_or_path")] public string? BaseModelNameOrPath { get; init; }
    [JsonPropertyName("modules_to_save")] public JsonNode? ModulesToSave { get; init; }
    [JsonPropertyName("layers_to_transform")] public JsonNode? LayersToTransform { get; init; }
    [JsonPropertyName("rank_pattern")] public JsonObject? RankPattern { get; init; }
    [JsonPropertyName("alpha_pattern")] public JsonObject? AlphaPattern { get; init; }

    /// <summary>Projection names to wrap.</summary>
    [JsonIgnore] public IReadOnlyList<string> TargetModules { get; init; } = LoraSettings.DefaultTargetModules;

    /// <summary>PEFT also allows a regular expression over module paths instead of a list.</summary>
    [JsonIgnore] public string? TargetModulesPattern { get; init; }

    [JsonInclude, JsonPropertyName("target_modules")]
    private JsonNode TargetModulesJson
    {
        get => TargetModulesPattern is not null ? JsonValue.Create(TargetModulesPattern) : new JsonArray(TargetModules.Select(t => (JsonNode)JsonValue.Create(t)).ToArray());
        init
        {
            switch (value)
            {
                case JsonArray array:
                    TargetModules = array.Select(n => n!.GetValue<string>()).ToArray();
                    break;
                case JsonValue single when single.GetValue<string>() == AllLinear:
                    TargetModules = [AllLinear];
                    break;
                case JsonValue pattern:
                    TargetModulesPattern = pattern.GetValue<string>();
                    TargetModules = [];
                    break;
            }
        }
    }

    [JsonExtensionData] public Dictionary<string, JsonElement>? Extra { get; init; }

    /// <summary>Multiplier of the low-rank update: alpha / r, or alpha / sqrt(r) with rsLoRA.</summary>
    [JsonIgnore] public double Scaling => UseRsLora ? Alpha / Math.Sqrt(Rank) : Alpha / Rank;

    /// <summary>Whether the projection at <paramref name="modulePath"/> (e.g. "model.layers.0.self_attn.q_proj") is adapted.</summary>
    public bool Targets(string modulePath)
    {
        if (TargetModulesPattern is not null) return Regex.IsMatch(modulePath, $"^(?:{TargetModulesPattern})$");
        var projection = modulePath[(modulePath.LastIndexOf('.') + 1)..];
        return TargetModules.Contains(AllLinear) ? DecoderKeys.AllProjections.Contains(projection) : TargetModules.Contains(projection);
    }

    /// <summary>Throws for settings this implementation would otherwise silently ignore.</summary>
    public void Validate(string source = "LoRA config")
    {
        if (PeftType != "LORA") throw new NotSupportedException($"{source}: peft_type '{PeftType}' is not supported (LORA).");
        if (Rank <= 0) throw new InvalidDataException($"{source}: r must be positive, got {Rank}.");
        if (Alpha <= 0) throw new InvalidDataException($"{source}: lora_alpha must be positive, got {Alpha}.");
        if (Dropout is < 0 or >= 1) throw new InvalidDataException($"{source}: lora_dropout must be in [0, 1), got {Dropout}.");
        if (Bias != "none") throw new NotSupportedException($"{source}: bias '{Bias}' is not supported (none).");
        if (FanInFanOut) throw new NotSupportedException($"{source}: fan_in_fan_out is not supported.");
        if (UseDora) throw new NotSupportedException($"{source}: DoRA is not supported.");
        if (ModulesToSave is JsonArray { Count: > 0 }) throw new NotSupportedException($"{source}: modules_to_save is not supported.");
        if (LayersToTransform is not null) throw new NotSupportedException($"{source}: layers_to_transform is not supported.");
        if (RankPattern is { Count: > 0 } || AlphaPattern is { Count: > 0 }) throw new NotSupportedException($"{source}: rank_pattern/alpha_pattern are not supported.");
        if (TargetModulesPattern is null)
        {
            var unknown = TargetModules.Where(t => t != AllLinear && !DecoderKeys.AllProjections.Contains(t)).ToList();
            if (TargetModules.Count == 0 || unknown.Count > 0)
                throw new NotSupportedException(
                    $"{source}: target_modules [{string.Join(", ", unknown)}] are not supported; use {string.Join(", ", DecoderKeys.AllProjections)} or {AllLinear}.");
        }
    }

    private static readonly JsonSerializerOptions SerializerOptions = new() { WriteIndented = true };

    public string ToJson() => JsonSerializer.Serialize(this, SerializerOptions);

    public static LoraConfig FromJson(string json, string source = "adapter_config.json")
    {
        try
        {
            var config = JsonSerializer.Deserialize<LoraConfig>(json, SerializerOptions) ?? throw new InvalidDataException($"{source}: empty.");
            config.Validate(source);
            return config;
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{source}: {e.Message}");
        }
    }
}
