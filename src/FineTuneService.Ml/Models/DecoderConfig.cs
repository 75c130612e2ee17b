using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using TorchSharp;

namespace FineTuneService.Ml.Models;

/// <summary>
/// Architecture of a Llama-family decoder (model_type "llama" or "qwen2"), read from and written to a Hugging Face
/// <c>config.json</c>. Keys this class does not model are kept in <see cref="Extra"/> so the file round-trips.
/// </summary>
public sealed record DecoderConfig
{
    public const string Llama = "llama";
    public const string Qwen2 = "qwen2";
    public static readonly IReadOnlyList<string> SupportedModelTypes = [Llama, Qwen2];

    [JsonPropertyName("architectures")] public IReadOnlyList<string>? Architectures { get; init; }
    [JsonPropertyName("model_type")] public required string ModelType { get; init; }
    [JsonPropertyName("vocab_size")] public required int VocabSize { get; init; }
    [JsonPropertyName("hidden_size")] public required int HiddenSize { get; init; }
    [JsonPropertyName("intermediate_size")] public required int IntermediateSize { get; init; }
    [JsonPropertyName("num_hidden_layers")] public required int NumHiddenLayers { get; init; }
    [JsonPropertyName("num_attention_heads")] public required int NumAttentionHeads { get; init; }
    /// <summary>Key/value heads for grouped-query attention; null means one per attention head.</summary>
    [JsonPropertyName("num_key_value_heads")] public int? NumKeyValueHeads { get; init; }
    /// <summary>Per-head width when it differs from hidden_size / num_attention_heads.</summary>
    [JsonPropertyName("head_dim")] public int? HeadDimOverride { get; init; }
    [JsonPropertyName("max_position_embeddings")] public int MaxPositionEmbeddings { get; init; } = 2048;
    [JsonPropertyName("rms_norm_eps")] public double RmsNormEps { get; init; } = 1e-6;
    [JsonPropertyName("rope_theta")] public double RopeTheta { get; init; } = 10000.0;
    [JsonPropertyName("hidden_act")] public string HiddenAct { get; init; } = "silu";
    [JsonPropertyName("tie_word_embeddings")] public bool TieWordEmbeddings { get; init; }
    /// <summary>Llama only: bias on q/k/v/o projections. Qwen2 always has q/k/v bias and no o bias.</summary>
    [JsonPropertyName("attention_bias")] public bool? AttentionBias { get; init; }
    [JsonPropertyName("mlp_bias")] public bool? MlpBias { get; init; }
    [JsonPropertyName("attention_dropout")] public double AttentionDropout { get; init; }
    [JsonPropertyName("initializer_range")] public double InitializerRange { get; init; } = 0.02;
    [JsonPropertyName("bos_token_id")] public int? BosTokenId { get; init; }
    /// <summary>One id or a list in config.json; kept as written.</summary>
    [JsonPropertyName("eos_token_id")] public JsonNode? EosTokenIdNode { get; init; }
    [JsonPropertyName("pad_token_id")] public int? PadTokenId { get; init; }
    [JsonPropertyName("torch_dtype")] public string? TorchDtype { get; init; }
    [JsonPropertyName("rope_scaling")] public JsonNode? RopeScaling { get; init; }
    [JsonPropertyName("use_sliding_window")] public bool? UseSlidingWindow { get; init; }

    /// <summary>Every other key of config.json (transformers_version, use_cache, sliding_window, ...).</summary>
    [JsonExtensionData] public Dictionary<string, JsonElement>? Extra { get; init; }

    [JsonIgnore] public int KeyValueHeads => NumKeyValueHeads ?? NumAttentionHeads;
    [JsonIgnore] public int HeadDim => HeadDimOverride ?? HiddenSize / NumAttentionHeads;
    [JsonIgnore] public bool QkvBias => ModelType == Qwen2 || AttentionBias == true;
    [JsonIgnore] public bool OutputProjectionBias => ModelType == Llama && AttentionBias == true;
    [JsonIgnore] public bool HasMlpBias => MlpBias == true;

    /// <summary>End-of-sequence ids (config.json allows one id or a list).</summary>
    [JsonIgnore]
    public IReadOnlyList<int> EosTokenIds => TokenIdList.Read(EosTokenIdNode);

    /// <summary>Parsed rope_scaling: null, "linear" or "llama3"; other types are refused.</summary>
    [JsonIgnore]
    public RopeScaling? RopeScalingSettings
    {
        get
        {
            if (RopeScaling is not JsonObject scaling) return null;
            var type = (scaling["rope_type"] ?? scaling["type"])?.GetValue<string>();
            double Number(string key, double? fallback = null) =>
                scaling[key]?.GetValue<double>() ?? fallback ?? throw new NotSupportedException($"rope_scaling '{type}' needs '{key}'.");
            return type switch
            {
                "default" => null,
                "linear" => new RopeScaling(type, Number("factor")),
                "llama3" => new RopeScaling(type, Number("factor"), Number("low_freq_factor"), Number("high_freq_factor"),
                    Number("original_max_position_embeddings")),
                _ => throw new NotSupportedException($"rope_scaling type '{type ?? "(missing)"}' is not supported (linear, llama3)."),
            };
        }
    }

    /// <summary>Element type the weights are stored in (torch_dtype), float32 when absent.</summary>
    [JsonIgnore]
    public torch.ScalarType StorageDType => TorchDtype switch
    {
        null or "float32" => torch.ScalarType.Float32,
        "bfloat16" => torch.ScalarType.BFloat16,
        "float16" => torch.ScalarType.Float16,
        var other => throw new NotSupportedException($"torch_dtype '{other}' is not supported (float32, float16, bfloat16)."),
    };

    private static readonly JsonSerializerOptions SerializerOptions = new()
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>Parses and validates config.json text; unknown architectures are refused.</summary>
    public static DecoderConfig FromJson(string json, string source = "config.json")
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{source}: not valid JSON ({e.Message}).");
        }
        if (root is not JsonObject obj)
            throw new InvalidDataException($"{source}: must be a JSON object.");

        var modelType = obj["model_type"]?.GetValue<string>();
        if (modelType is null || !SupportedModelTypes.Contains(modelType))
            throw new NotSupportedException(
                $"{source}: model_type '{modelType ?? "(missing)"}' is not supported; supported model types: {string.Join(", ", SupportedModelTypes)}.");

        // Newer transformers write "dtype" instead of "torch_dtype".
        if (obj["torch_dtype"] is null && obj["dtype"] is JsonValue dtype)
        {
            obj.Remove("dtype");
            obj["torch_dtype"] = dtype.GetValue<string>();
        }

        DecoderConfig config;
        try
        {
            config = obj.Deserialize<DecoderConfig>(SerializerOptions)
                ?? throw new InvalidDataException($"{source}: empty configuration.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{source}: {e.Message}");
        }
        config.Validate(source);
        return config;
    }

    public static DecoderConfig Load(string path) => FromJson(File.ReadAllText(path), path);

    public string ToJson() => JsonSerializer.Serialize(this, SerializerOptions);

    public void Save(string path) => File.WriteAllText(path, ToJson());

    /// <summary>Throws when the configuration describes something this decoder cannot run faithfully.</summary>
    public void Validate(string source = "config")
    {
        if (!SupportedModelTypes.Contains(ModelType))
            throw new NotSupportedException($"{source}: model_type '{ModelType}' is not supported; supported: {string.Join(", ", SupportedModelTypes)}.");
        if (Architectures is { Count: > 0 } && !Architectures.All(a => a is "LlamaForCausalLM" or "Qwen2ForCausalLM"))
            throw new NotSupportedException($"{source}: architectures [{string.Join(", ", Architectures)}] are not supported (LlamaForCausalLM, Qwen2ForCausalLM).");
        if (VocabSize <= 0 || HiddenSize <= 0 || IntermediateSize <= 0 || NumHiddenLayers <= 0 || NumAttentionHeads <= 0)
            throw new InvalidDataException($"{source}: vocab_size, hidden_size, intermediate_size, num_hidden_layers and num_attention_heads must be positive.");
        if (HeadDimOverride is null && HiddenSize % NumAttentionHeads != 0)
            throw new InvalidDataException($"{source}: hidden_size {HiddenSize} is not divisible by num_attention_heads {NumAttentionHeads}.");
        if (KeyValueHeads <= 0 || NumAttentionHeads % KeyValueHeads != 0)
            throw new InvalidDataException($"{source}: num_attention_heads {NumAttentionHeads} must be a multiple of num_key_value_heads {KeyValueHeads}.");
        if (HeadDim % 2 != 0)
            throw new InvalidDataException($"{source}: head dimension {HeadDim} must be even for rotary embeddings.");
        if (HiddenAct != "silu")
            throw new NotSupportedException($"{source}: hidden_act '{HiddenAct}' is not supported (silu).");
        try
        {
            _ = RopeScalingSettings;
        }
        catch (NotSupportedException e)
        {
            throw new NotSupportedException($"{source}: {e.Message}");
        }
        if (UseSlidingWindow == true)
            throw new NotSupportedException($"{source}: sliding-window attention is not supported.");
        _ = StorageDType;
    }
}

/// <summary>Rotary frequency scaling of a config.json ("linear" or Llama 3 "llama3").</summary>
public sealed record RopeScaling(string Type, double Factor, double LowFrequencyFactor = 1, double HighFrequencyFactor = 4,
    double OriginalMaxPositionEmbeddings = 8192);
