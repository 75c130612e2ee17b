using FineTuneService.Contracts.Safety;

namespace FineTuneService.Core.Models;

/// <summary>Which jobs depend on their base model's located safety layers (the API and the worker both ask).</summary>
public static class LocatedSafetyLayers
{
    /// <summary>
    /// True for a plan with <c>frozen_layers</c> but neither <c>first_layer</c> nor <c>last_layer</c>: it freezes the
    /// layers the locator found, so its job waits until they are known.
    /// </summary>
    public static bool AreNeededBy(SafetyPlan plan) => plan.Params<FrozenLayersParams>() is { FirstLayer: null, LastLayer: null };

    /// <summary>The registered name of the strategy that needs them, for messages ("frozen_layers").</summary>
    public static string StrategyName => SafetyStrategies.Registry.For<FrozenLayersParams>().Name;
}
