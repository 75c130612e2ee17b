using System.Text.Json;
using System.Text.Json.Nodes;

namespace FineTuneService.Contracts.Jobs;

/// <summary>The projection names of the Llama/Qwen2 decoder (Hugging Face checkpoint keys), which LoRA may adapt.</summary>
public static class DecoderProjections
{
    public const string Query = "q_proj";
    public const string Key = "k_proj";
    public const string Value = "v_proj";
    public const string Output = "o_proj";
    public const string Gate = "gate_proj";
    public const string Up = "up_proj";
    public const string Down = "down_proj";

    public static readonly IReadOnlyList<string> Attention = [Query, Key, Value, Output];
    public static readonly IReadOnlyList<string> Mlp = [Gate, Up, Down];
    public static readonly IReadOnlyList<string> All = [.. Attention, .. Mlp];

    /// <summary>PEFT's name for "every linear projection".</summary>
    public const string AllLinear = "all-linear";
}

/// <summary>
/// Extension <c>method.supervised.adapter</c>: <c>{"type": "lora", "rank", "alpha", "dropout", "target_modules"}</c>
/// trains a LoRA adapter (merged into the saved weights, and kept in PEFT's files) instead of every weight.
/// </summary>
public sealed record LoraSettings
{
    public const string TypeName = "lora";

    /// <summary>What a request without <c>target_modules</c> adapts.</summary>
    public static readonly IReadOnlyList<string> DefaultTargetModules = [DecoderProjections.Query, DecoderProjections.Value];

    public int Rank { get; init; } = 8;
    public double Alpha { get; init; } = 16;
    public double Dropout { get; init; } = 0.05;

    /// <summary>Projection names from <see cref="DecoderProjections.All"/>, or just <see cref="DecoderProjections.AllLinear"/>.</summary>
    public IReadOnlyList<string> TargetModules { get; init; } = DefaultTargetModules;

    /// <summary>The request's adapter: null when absent or <c>"type": "full"</c> (a full fine-tune).</summary>
    /// <exception cref="ContractViolation">What is wrong, with its <c>param</c>.</exception>
    public static LoraSettings? FromRequest(JsonNode? node, string param)
    {
        if (node is null) return null;
        if (node is not JsonObject adapter) throw new ContractViolation(param, $"{param} must be an object.");
        foreach (var (key, _) in adapter)
            if (key is not ("type" or "rank" or "alpha" or "dropout" or "target_modules"))
                throw new ContractViolation($"{param}.{key}", $"Unknown adapter setting '{key}'.");

        var type = adapter["type"] is null ? TypeName : adapter["type"]!.GetValueKind() == JsonValueKind.String ? adapter["type"]!.GetValue<string>() : "";
        if (type == "full") return null;
        if (type != TypeName) throw new ContractViolation($"{param}.type", $"{param}.type must be '{TypeName}' or 'full'.");

        var rank = adapter["rank"] is { } r ? (int)RequestNumbers.Read(r, $"{param}.rank", integer: true, 1, 256) : 8;
        IReadOnlyList<string> targets = adapter["target_modules"] switch
        {
            null => DefaultTargetModules,
            JsonValue all when all.GetValueKind() == JsonValueKind.String && all.GetValue<string>() == DecoderProjections.AllLinear => [DecoderProjections.AllLinear],
            JsonArray names when names.Count > 0 && names.All(n => n?.GetValueKind() == JsonValueKind.String && DecoderProjections.All.Contains(n.GetValue<string>()))
                => names.Select(n => n!.GetValue<string>()).Distinct().ToList(),
            _ => throw new ContractViolation($"{param}.target_modules",
                $"{param}.target_modules must be \"{DecoderProjections.AllLinear}\" or a list of: {string.Join(", ", DecoderProjections.All)}."),
        };
        return new LoraSettings
        {
            Rank = rank,
            Alpha = adapter["alpha"] is { } alpha ? RequestNumbers.Read(alpha, $"{param}.alpha", integer: false, 1e-3, 4096) : 2 * rank,
            Dropout = adapter["dropout"] is { } dropout ? RequestNumbers.Read(dropout, $"{param}.dropout", integer: false, 0, 0.9) : 0.05,
            TargetModules = targets,
        };
    }

    public JsonObject ToJson() => new()
    {
        ["type"] = TypeName,
        ["rank"] = Rank,
        ["alpha"] = Alpha,
        ["dropout"] = Dropout,
        ["target_modules"] = new JsonArray(TargetModules.Select(t => (JsonNode)t).ToArray()),
    };

    public bool Equals(LoraSettings? other) => other is not null && Rank == other.Rank && Alpha == other.Alpha && Dropout == other.Dropout
        && TargetModules.SequenceEqual(other.TargetModules);

    public override int GetHashCode() => HashCode.Combine(Rank, Alpha, Dropout, TargetModules.Count);
}
