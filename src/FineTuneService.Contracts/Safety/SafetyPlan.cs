using System.Text.Json;
using System.Text.Json.Nodes;

namespace FineTuneService.Contracts.Safety;

/// <summary>A requested strategy with its parameters (omitted fields at their defaults).</summary>
public sealed record SafetyStrategyChoice(SafetyStrategyDescriptor Strategy, ISafetyStrategyParams Params);

/// <summary>
/// A job's safety request, typed: <c>{"strategy": ["projected_gradients", "antidote"], "params": {"antidote": {"dense_ratio": 0.1}}}</c>.
/// <c>strategy</c> is a name or a list of names from the registry (<see cref="SafetyStrategies"/>); <c>params</c> is keyed
/// by strategy name. Stored and echoed in that shape, with every parameter field written out. The API builds it with
/// <see cref="FromRequest"/> and both hosts check it with <see cref="Validate"/>; the worker runs <see cref="RunOrder"/>.
/// </summary>
public sealed class SafetyPlan : IEquatable<SafetyPlan>
{
    public SafetyPlan(IReadOnlyList<SafetyStrategyChoice> strategies, SafetyStrategyRegistry? registry = null)
    {
        Registry = registry ?? SafetyStrategies.Registry;
        Strategies = strategies;
        RunOrder = strategies.OrderBy(s => Registry.RunIndex(s.Strategy)).ToArray();
    }

    public static SafetyPlan None { get; } = new([]);

    /// <summary>A plan of registered strategies given by their parameters, e.g. <c>Of(new AntidoteParams(DenseRatio: 0.2))</c>.</summary>
    public static SafetyPlan Of(params ISafetyStrategyParams[] parameters) =>
        new(parameters.Select(p => new SafetyStrategyChoice(SafetyStrategies.Registry.For(p.GetType()), p)).ToArray());

    public SafetyStrategyRegistry Registry { get; }

    /// <summary>The strategies as requested (each once), which is how the job echoes them; empty for "none".</summary>
    public IReadOnlyList<SafetyStrategyChoice> Strategies { get; }

    /// <summary>The strategies in the order they act: by phase, then registry order.</summary>
    public IReadOnlyList<SafetyStrategyChoice> RunOrder { get; }

    public bool IsNone => Strategies.Count == 0;

    /// <summary>The strategies that act after training (<see cref="SafetyPhase.AfterTraining"/>), in run order.</summary>
    public IReadOnlyList<SafetyStrategyChoice> AfterTraining => RunOrder.Where(s => s.Strategy.Phase == SafetyPhase.AfterTraining).ToArray();

    /// <summary>
    /// The plan without its post-training strategies: what acts before and during training, which is what two plans that
    /// differ only after training share (plain SFT under antidote, merge and safety_patch).
    /// </summary>
    public SafetyPlan UpToTraining() => new(Strategies.Where(s => s.Strategy.Phase != SafetyPhase.AfterTraining).ToArray(), Registry);

    /// <summary>The parameters of the strategy that takes <typeparamref name="TParams"/>, or null when it was not requested.</summary>
    public TParams? Params<TParams>() where TParams : class, ISafetyStrategyParams =>
        Strategies.Select(s => s.Params).OfType<TParams>().FirstOrDefault();

    /// <summary>
    /// Every rule the worker enforces on a plan: strategies of one exclusive group are not combined, and each
    /// strategy's parameters are within their bounds for <paramref name="model"/>.
    /// </summary>
    /// <exception cref="ContractViolation">The first rule broken, with its <c>param</c>.</exception>
    public void Validate(ModelFacts model)
    {
        var clash = Strategies.Where(s => s.Strategy.ExclusiveGroup is not null).GroupBy(s => s.Strategy.ExclusiveGroup).FirstOrDefault(g => g.Count() > 1);
        if (clash is not null)
        {
            var names = clash.Select(s => $"'{s.Strategy.Name}'").ToArray();
            throw new ContractViolation(StrategyParam,
                $"{string.Join(" and ", names)} cannot be combined: they do the same job ({clash.Key}) in different ways; choose one.");
        }
        foreach (var (strategy, parameters) in Strategies)
        {
            var error = parameters.Errors(model).FirstOrDefault();
            if (error.Message is null) continue;
            var param = $"{ParamsParam}.{strategy.Name}";
            throw new ContractViolation(error.Field is null ? param : $"{param}.{error.Field}", $"{param}: {error.Message}");
        }
    }

    private const string Root = "safety";
    private const string StrategyParam = Root + ".strategy";
    private const string ParamsParam = Root + ".params";

    /// <summary>
    /// Reads the request's <c>safety</c> object (null = "none"). Names are checked against the registry and listed at
    /// most once; params must belong to a requested strategy and match its record.
    /// </summary>
    /// <exception cref="ContractViolation">What is wrong, with the <c>param</c> that says where.</exception>
    public static SafetyPlan FromRequest(JsonObject? safety, SafetyStrategyRegistry? registry = null)
    {
        registry ??= SafetyStrategies.Registry;
        using var document = JsonDocument.Parse(safety?.ToJsonString() ?? "{}");
        var root = document.RootElement;

        var names = StrategyNames(root, registry);
        var given = root.TryGetProperty("params", out var p) ? p : default;
        if (given.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Null or JsonValueKind.Object))
            throw new ContractViolation(ParamsParam, "safety.params must be an object keyed by strategy name.");
        foreach (var property in root.EnumerateObject())
            if (property.Name is not ("strategy" or "params"))
                throw new ContractViolation($"{Root}.{property.Name}", $"Unknown safety field '{property.Name}'; use safety.strategy and safety.params.");

        var parameters = given.ValueKind == JsonValueKind.Object ? given.EnumerateObject().ToDictionary(x => x.Name, x => x.Value) : [];
        foreach (var key in parameters.Keys)
        {
            if (registry.Find(key) is null)
                throw new ContractViolation($"{ParamsParam}.{key}",
                    $"safety.params has no strategy '{key}'; expected one of {string.Join(", ", registry.All.Select(s => s.Name))}.");
            if (!names.Contains(key))
                throw new ContractViolation($"{ParamsParam}.{key}", $"safety.params.{key} is given but '{key}' is not in safety.strategy.");
        }

        var choices = names.Select(name =>
        {
            var strategy = registry.Find(name)!;
            return new SafetyStrategyChoice(strategy,
                parameters.TryGetValue(name, out var value) ? strategy.Bind(value, $"{ParamsParam}.{name}") : strategy.Defaults);
        }).ToArray();
        return new SafetyPlan(choices, registry);
    }

    /// <summary>
    /// Reads a stored plan. Rows written before create-time validation may hold parameters their strategy refuses
    /// (those jobs failed on the worker); such parameters read as the defaults rather than making the row unreadable.
    /// </summary>
    public static SafetyPlan FromStored(string json, SafetyStrategyRegistry? registry = null)
    {
        registry ??= SafetyStrategies.Registry;
        using var document = JsonDocument.Parse(json);
        var root = document.RootElement;
        var names = root.TryGetProperty("strategy", out var strategy) ? strategy.ValueKind switch
        {
            JsonValueKind.String => [strategy.GetString()!],
            JsonValueKind.Array => strategy.EnumerateArray().Where(e => e.ValueKind == JsonValueKind.String).Select(e => e.GetString()!).ToArray(),
            _ => [],
        } : Array.Empty<string>();
        var parameters = root.TryGetProperty("params", out var p) && p.ValueKind == JsonValueKind.Object ? p : default;

        var choices = new List<SafetyStrategyChoice>();
        foreach (var name in names.Distinct())
        {
            if (registry.Find(name) is not { } descriptor) continue;
            var value = parameters.ValueKind == JsonValueKind.Object && parameters.TryGetProperty(name, out var v) ? v : default;
            ISafetyStrategyParams bound;
            try
            {
                bound = value.ValueKind == JsonValueKind.Undefined ? descriptor.Defaults : descriptor.Bind(value);
            }
            catch (ContractViolation)
            {
                bound = descriptor.Defaults;
            }
            choices.Add(new SafetyStrategyChoice(descriptor, bound));
        }
        return new SafetyPlan(choices, registry);
    }

    /// <summary>The stored and echoed shape: <c>{"strategy": [...], "params": {name: {every field}}}</c>; "none" when empty.</summary>
    public JsonObject ToJson() => new()
    {
        ["strategy"] = IsNone ? new JsonArray(SafetyStrategyRegistry.None) : new JsonArray(Strategies.Select(s => (JsonNode)s.Strategy.Name).ToArray()),
        ["params"] = new JsonObject(Strategies.Select(s => KeyValuePair.Create(s.Strategy.Name, (JsonNode?)s.Strategy.ToJson(s.Params)))),
    };

    public string ToJsonString() => ToJson().ToJsonString();

    private static List<string> StrategyNames(JsonElement root, SafetyStrategyRegistry registry)
    {
        var strategy = root.TryGetProperty("strategy", out var s) ? s : default;
        var requested = strategy.ValueKind switch
        {
            JsonValueKind.Undefined or JsonValueKind.Null => [SafetyStrategyRegistry.None],
            JsonValueKind.String => [strategy.GetString()!],
            JsonValueKind.Array when strategy.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String) =>
                strategy.EnumerateArray().Select(e => e.GetString()!).ToList(),
            _ => throw new ContractViolation(StrategyParam, "safety.strategy must be a strategy name or a list of them."),
        };
        var names = new List<string>();
        foreach (var name in requested)
        {
            if (name != SafetyStrategyRegistry.None && registry.Find(name) is null)
                throw new ContractViolation(StrategyParam, $"Unknown safety strategy '{name}'. Known: {string.Join(", ", registry.Names)}.");
            if (!names.Contains(name)) names.Add(name);
        }
        if (names.Count > 1 && names.Contains(SafetyStrategyRegistry.None))
            throw new ContractViolation(StrategyParam, "Safety strategy 'none' cannot be combined with other strategies.");
        names.Remove(SafetyStrategyRegistry.None);
        return names;
    }

    public bool Equals(SafetyPlan? other) => other is not null && (ReferenceEquals(this, other) || ToJsonString() == other.ToJsonString());
    public override bool Equals(object? obj) => Equals(obj as SafetyPlan);
    public override int GetHashCode() => ToJsonString().GetHashCode(StringComparison.Ordinal);
    public override string ToString() => ToJsonString();
}
