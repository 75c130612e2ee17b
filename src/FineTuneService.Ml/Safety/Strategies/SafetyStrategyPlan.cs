// Torch-free, like SafetyStrategyContracts.cs: the API can mirror both files to validate requests without libtorch.
using System.Text.Json;

namespace FineTuneService.Ml.Safety.Strategies;

/// <summary>A safety request that cannot be honoured; the message says what to fix.</summary>
public sealed class SafetyStrategyConfigurationException(string message) : Exception(message);

/// <summary>
/// A validated safety request: <c>{"strategy": ["projected_gradients", "antidote"], "params": {"antidote": {"dense_ratio": 0.1}}}</c>.
/// <c>strategy</c> is a name or a list of names (<see cref="SafetyStrategyNames"/>); <c>params</c> is optional and keyed by
/// strategy name, with snake_case fields of the matching record (omitted fields keep their defaults).
/// Strategies always run in phase order, whatever the list order: frozen_layers (before training), projected_gradients
/// (every step), antidote then merge or safemerge (after training).
/// </summary>
public sealed record SafetyStrategyPlan(
    FrozenLayersParams? FrozenLayers = null,
    ProjectedGradientsParams? ProjectedGradients = null,
    AntidoteParams? Antidote = null,
    MergeParams? Merge = null,
    SafeMergeParams? SafeMerge = null)
{
    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        UnmappedMemberHandling = System.Text.Json.Serialization.JsonUnmappedMemberHandling.Disallow,
    };

    private static readonly string[] PhaseOrder =
        [SafetyStrategyNames.FrozenLayers, SafetyStrategyNames.ProjectedGradients, SafetyStrategyNames.Antidote, SafetyStrategyNames.Merge, SafetyStrategyNames.SafeMerge];

    public static SafetyStrategyPlan None { get; } = new();

    /// <summary>The selected strategies in the order they run; empty for <c>none</c>.</summary>
    public IReadOnlyList<string> Strategies => PhaseOrder.Where(name => name switch
    {
        SafetyStrategyNames.FrozenLayers => FrozenLayers is not null,
        SafetyStrategyNames.ProjectedGradients => ProjectedGradients is not null,
        SafetyStrategyNames.Antidote => Antidote is not null,
        SafetyStrategyNames.Merge => Merge is not null,
        _ => SafeMerge is not null,
    }).ToArray();

    public static SafetyStrategyPlan Parse(string json)
    {
        try
        {
            using var document = JsonDocument.Parse(json);
            return Parse(document.RootElement);
        }
        catch (JsonException e)
        {
            throw new SafetyStrategyConfigurationException($"Safety settings are not valid JSON: {e.Message}");
        }
    }

    public static SafetyStrategyPlan Parse(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object) throw Error("Safety settings must be a JSON object like {\"strategy\": [\"antidote\"], \"params\": {}}.");
        foreach (var property in root.EnumerateObject())
            if (property.Name is not ("strategy" or "params")) throw Error($"Unknown safety setting '{property.Name}'; expected 'strategy' and optionally 'params'.");

        var names = ReadNames(root);
        var parameters = root.TryGetProperty("params", out var p) ? p : default;
        if (parameters.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Null or JsonValueKind.Object))
            throw Error("'params' must be an object keyed by strategy name.");
        var given = parameters.ValueKind == JsonValueKind.Object ? parameters.EnumerateObject().ToDictionary(x => x.Name, x => x.Value) : [];
        foreach (var key in given.Keys)
        {
            if (!SafetyStrategyNames.All.Contains(key) || key == SafetyStrategyNames.None) throw Error($"params: unknown strategy '{key}'; expected one of {string.Join(", ", PhaseOrder)}.");
            if (!names.Contains(key)) throw Error($"params.{key} is given but '{key}' is not in 'strategy'.");
        }

        T? Read<T>(string name) where T : class =>
            !names.Contains(name) ? null : Validated(name, given.TryGetValue(name, out var value) ? Deserialize<T>(name, value) : Default<T>());

        var plan = new SafetyStrategyPlan(
            Read<FrozenLayersParams>(SafetyStrategyNames.FrozenLayers),
            Read<ProjectedGradientsParams>(SafetyStrategyNames.ProjectedGradients),
            Read<AntidoteParams>(SafetyStrategyNames.Antidote),
            Read<MergeParams>(SafetyStrategyNames.Merge),
            Read<SafeMergeParams>(SafetyStrategyNames.SafeMerge));
        return plan;
    }

    private static HashSet<string> ReadNames(JsonElement root)
    {
        if (!root.TryGetProperty("strategy", out var strategy)) throw Error("'strategy' is required (use \"none\" for no safety strategy).");
        var names = strategy.ValueKind switch
        {
            JsonValueKind.String => [strategy.GetString()!],
            JsonValueKind.Array => strategy.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String
                ? e.GetString()!
                : throw Error("'strategy' entries must be strings.")).ToList(),
            _ => throw Error("'strategy' must be a name or a list of names."),
        };
        foreach (var name in names)
            if (!SafetyStrategyNames.All.Contains(name)) throw Error($"Unknown safety strategy '{name}'; expected one of {string.Join(", ", SafetyStrategyNames.All)}.");
        var duplicate = names.GroupBy(n => n).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw Error($"Safety strategy '{duplicate.Key}' is listed twice.");
        if (names.Contains(SafetyStrategyNames.None) && names.Count > 1) throw Error("'none' cannot be combined with other safety strategies.");
        if (names.Contains(SafetyStrategyNames.Merge) && names.Contains(SafetyStrategyNames.SafeMerge))
            throw Error("'merge' and 'safemerge' both merge the model after training; choose one.");
        names.Remove(SafetyStrategyNames.None);
        return names.ToHashSet(StringComparer.Ordinal);
    }

    private static T Deserialize<T>(string name, JsonElement value) where T : class
    {
        if (value.ValueKind != JsonValueKind.Object) throw Error($"params.{name} must be an object.");
        try
        {
            return value.Deserialize<T>(Json) ?? throw Error($"params.{name} must be an object.");
        }
        catch (JsonException e)
        {
            var allowed = typeof(T).GetConstructors()[0].GetParameters().Select(p => Json.PropertyNamingPolicy!.ConvertName(p.Name!));
            throw Error($"params.{name}: {e.Message} Allowed fields: {string.Join(", ", allowed)}.");
        }
    }

    private static T Default<T>() where T : class => (T)Activator.CreateInstance(typeof(T), typeof(T).GetConstructors()[0].GetParameters().Select(p => p.DefaultValue).ToArray())!;

    private static T Validated<T>(string name, T value)
    {
        var errors = value switch
        {
            FrozenLayersParams f => f.Errors(),
            ProjectedGradientsParams g => g.Errors(),
            AntidoteParams a => a.Errors(),
            MergeParams m => m.Errors(),
            SafeMergeParams s => s.Errors(),
            _ => [],
        };
        var problems = errors.ToArray();
        return problems.Length == 0 ? value : throw Error($"params.{name}: {string.Join(" ", problems)}");
    }

    private static SafetyStrategyConfigurationException Error(string message) => new(message);
}
