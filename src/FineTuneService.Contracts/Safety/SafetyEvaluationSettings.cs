using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace FineTuneService.Contracts.Safety;

/// <summary>
/// How a stand-alone safety evaluation (<c>POST /v1/safety/evaluations</c>) runs, as validated by the API and read by
/// the worker; shown as the evaluation's <c>settings</c>.
/// </summary>
public sealed record SafetyEvaluationSettings
{
    public const string HarmfulScore = "harmful_score";
    public const string OverRefusal = "over_refusal";

    /// <summary>Prompts of the shipped harmful set an evaluation without a prompt file and without max_prompts scores.</summary>
    public const int DefaultShippedPrompts = 100;

    /// <summary>Metrics measured: always <see cref="HarmfulScore"/>, optionally <see cref="OverRefusal"/>.</summary>
    public IReadOnlyList<string> Include { get; init; } = [HarmfulScore];

    /// <summary>At most this many prompts of the set; null = all of them.</summary>
    public int? MaxPrompts { get; init; }

    /// <summary>Greedy tokens generated per prompt.</summary>
    public int MaxNewTokens { get; init; } = 32;

    /// <summary>Responses kept as samples per metric in the report.</summary>
    public int SamplesPerPart { get; init; } = 10;

    /// <summary>Prompts of the uploaded prompt file that are scored (after <see cref="MaxPrompts"/>); null for the shipped set.</summary>
    public int? PromptCount { get; init; }

    /// <summary>Who asked, e.g. "tenant:…" or "admin:sk-fts-ad…".</summary>
    public string? RequestedBy { get; init; }

    [JsonIgnore] public bool MeasuresOverRefusal => Include.Contains(OverRefusal);

    /// <summary>The request's settings within their bounds; <paramref name="maxPromptsLimit"/> is the service's prompt-set limit.</summary>
    /// <exception cref="ContractViolation">A value out of bounds, with its <c>param</c>.</exception>
    public static SafetyEvaluationSettings FromRequest(IReadOnlyList<string>? include, int? maxPrompts, int? maxNewTokens, int? samplesPerPart,
        int maxPromptsLimit)
    {
        include ??= [HarmfulScore];
        foreach (var metric in include)
            if (metric is not (HarmfulScore or OverRefusal))
                throw new ContractViolation("include", $"Unknown metric '{metric}' in include: use '{HarmfulScore}' and '{OverRefusal}'.");
        if (!include.Contains(HarmfulScore))
            throw new ContractViolation("include", $"include must contain '{HarmfulScore}': every safety evaluation measures it.");
        return new SafetyEvaluationSettings
        {
            Include = include.Distinct().ToList(),
            MaxPrompts = Range(maxPrompts, "max_prompts", 1, maxPromptsLimit),
            MaxNewTokens = Range(maxNewTokens, "max_new_tokens", 1, 512) ?? 32,
            SamplesPerPart = Range(samplesPerPart, "samples_per_part", 0, 100) ?? 10,
        };
    }

    /// <summary>
    /// Completes the settings for the prompt set: a prompt file of <paramref name="filePrompts"/> prompts scores at most
    /// <see cref="MaxPrompts"/> of them; the shipped set (null) scores <see cref="DefaultShippedPrompts"/> unless told otherwise.
    /// </summary>
    public SafetyEvaluationSettings ForPrompts(int? filePrompts, string requestedBy) => this with
    {
        MaxPrompts = MaxPrompts ?? (filePrompts is null ? DefaultShippedPrompts : null),
        PromptCount = filePrompts is { } n ? Math.Min(n, MaxPrompts ?? n) : null,
        RequestedBy = requestedBy,
    };

    /// <summary>The stored and echoed shape (snake_case, every field).</summary>
    public JsonObject ToJson() => JsonSerializer.SerializeToNode(this, ContractJson.Options)!.AsObject();

    public string ToJsonString() => JsonSerializer.Serialize(this, ContractJson.Options);

    /// <summary>Reads stored settings; fields that older rows lack keep their defaults.</summary>
    public static SafetyEvaluationSettings FromStored(string json) =>
        JsonSerializer.Deserialize<SafetyEvaluationSettings>(json, StoredJson) ?? new SafetyEvaluationSettings();

    private static readonly JsonSerializerOptions StoredJson = new(ContractJson.Options) { UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip };

    private static int? Range(int? value, string param, int min, int max) =>
        value is null ? null : (int)RequestNumbers.Check(value.Value, param, integer: true, min, max);

    public bool Equals(SafetyEvaluationSettings? other) => other is not null && Include.SequenceEqual(other.Include)
        && MaxPrompts == other.MaxPrompts && MaxNewTokens == other.MaxNewTokens && SamplesPerPart == other.SamplesPerPart
        && PromptCount == other.PromptCount && RequestedBy == other.RequestedBy;

    public override int GetHashCode() => HashCode.Combine(Include.Count, MaxPrompts, MaxNewTokens, SamplesPerPart, PromptCount, RequestedBy);
}
