namespace FineTuneService.Contracts.Safety;

/// <summary>The registered safety strategies, in the order they run (phase first, then registration order).</summary>
public sealed class SafetyStrategyRegistry
{
    /// <summary>Wire name of "no safety strategy"; it cannot be combined with others.</summary>
    public const string None = "none";

    private readonly Dictionary<string, SafetyStrategyDescriptor> _byName;
    private readonly Dictionary<Type, SafetyStrategyDescriptor> _byParams;

    public SafetyStrategyRegistry(IEnumerable<SafetyStrategyDescriptor> strategies)
    {
        All = strategies.Select((s, i) => (s, i)).OrderBy(x => x.s.Phase).ThenBy(x => x.i).Select(x => x.s).ToArray();
        _byName = All.ToDictionary(s => s.Name, StringComparer.Ordinal);
        _byParams = All.ToDictionary(s => s.ParamsType);
        if (_byName.ContainsKey(None)) throw new ArgumentException($"'{None}' is reserved.", nameof(strategies));
    }

    public IReadOnlyList<SafetyStrategyDescriptor> All { get; }

    /// <summary>"none" followed by every strategy name, as the docs and error messages list them.</summary>
    public IReadOnlyList<string> Names => [None, .. All.Select(s => s.Name)];

    public SafetyStrategyDescriptor? Find(string name) => _byName.GetValueOrDefault(name);

    /// <summary>The strategy whose parameters are <typeparamref name="TParams"/>.</summary>
    public SafetyStrategyDescriptor For<TParams>() where TParams : ISafetyStrategyParams => For(typeof(TParams));

    public SafetyStrategyDescriptor For(Type paramsType) => _byParams.GetValueOrDefault(paramsType)
        ?? throw new ArgumentException($"No safety strategy is registered with parameters {paramsType.Name}.", nameof(paramsType));

    /// <summary>Position in run order, for sorting a plan.</summary>
    internal int RunIndex(SafetyStrategyDescriptor strategy) => Array.IndexOf((SafetyStrategyDescriptor[])All, strategy);
}

/// <summary>Builds descriptors; see <see cref="SafetyStrategies"/>.</summary>
public static class SafetyStrategy
{
    public static SafetyStrategyDescriptor Define<TParams>(string name, SafetyPhase phase, string description, string? exclusiveGroup = null)
        where TParams : ISafetyStrategyParams => new(name, phase, typeof(TParams), description, exclusiveGroup);
}
