using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace FineTuneService.Ml.Models;

/// <summary>Hugging Face <c>generation_config.json</c>: special token ids and default sampling settings.</summary>
public sealed record GenerationConfig
{
    [JsonPropertyName("bos_token_id")] public int? BosTokenId { get; init; }
    /// <summary>One id or a list, kept as written.</summary>
    [JsonPropertyName("eos_token_id")] public JsonNode? EosTokenIdNode { get; init; }
    [JsonPropertyName("pad_token_id")] public int? PadTokenId { get; init; }
    [JsonPropertyName("do_sample")] public bool? DoSample { get; init; }
    [JsonPropertyName("temperature")] public double? Temperature { get; init; }
    [JsonPropertyName("top_p")] public double? TopP { get; init; }
    [JsonPropertyName("top_k")] public int? TopK { get; init; }
    [JsonPropertyName("max_new_tokens")] public int? MaxNewTokens { get; init; }
    [JsonExtensionData] public Dictionary<string, JsonElement>? Extra { get; init; }

    [JsonIgnore]
    public IReadOnlyList<int> EosTokenIds => TokenIdList.Read(EosTokenIdNode);

    private static readonly JsonSerializerOptions SerializerOptions = new()
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>The token ids of a model config, as transformers derives them when no file exists.</summary>
    public static GenerationConfig From(DecoderConfig config) => new()
    {
        BosTokenId = config.BosTokenId,
        EosTokenIdNode = config.EosTokenIdNode?.DeepClone(),
        PadTokenId = config.PadTokenId,
    };

    public static GenerationConfig Load(string path)
    {
        try
        {
            return JsonSerializer.Deserialize<GenerationConfig>(File.ReadAllText(path), SerializerOptions)
                ?? throw new InvalidDataException($"{path}: empty generation config.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: {e.Message}");
        }
    }

    public string ToJson() => JsonSerializer.Serialize(this, SerializerOptions);

    public void Save(string path) => File.WriteAllText(path, ToJson());
}
