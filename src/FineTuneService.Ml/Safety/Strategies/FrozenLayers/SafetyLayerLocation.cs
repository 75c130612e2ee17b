using System.Text.Json;
using System.Text.Json.Serialization;

namespace FineTuneService.Ml.Safety.Strategies.FrozenLayers;

/// <summary>Per-layer mean cosine similarity of last-prompt-token hidden states over prompt pairs.</summary>
/// <param name="NormalNormal">N-N: pairs of normal prompts.</param>
/// <param name="MaliciousMalicious">M-M: pairs of malicious prompts.</param>
/// <param name="NormalMalicious">N-M: one normal and one malicious prompt.</param>
/// <param name="Gap">(N-N + M-M)/2 - (N-M): how far the mixed pairs have separated.</param>
public sealed record SimilarityCurves(double[] NormalNormal, double[] MaliciousMalicious, double[] NormalMalicious, double[] Gap)
{
    public int Layers => Gap.Length;
}

/// <summary>Over-rejection of benign prompts with layers <see cref="FirstLayer"/>..<see cref="LastLayer"/> scaled by alpha.</summary>
public sealed record OverRejectionTrial(int FirstLayer, int LastLayer, int Refusals);

/// <summary>
/// Located safety layers of a base model (inclusive range), with the evidence. Stored per base model by the service
/// (<see cref="ToJson"/>), and used by <c>frozen_layers</c> when the request gives no range.
/// </summary>
public sealed record SafetyLayerLocation(
    int FirstLayer,
    int LastLayer,
    int CandidateFirstLayer,
    int CandidateLastLayer,
    SimilarityCurves Curves,
    double ScaleAlpha,
    int BenignPrompts,
    int BaselineRefusals,
    IReadOnlyList<OverRejectionTrial> Trials)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static SafetyLayerLocation FromJson(string json) =>
        JsonSerializer.Deserialize<SafetyLayerLocation>(json, Json) ?? throw new JsonException("Empty safety layer location.");
}
