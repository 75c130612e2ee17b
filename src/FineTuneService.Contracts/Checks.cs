using FineTuneService.Contracts.Safety;

namespace FineTuneService.Contracts;

/// <summary>Guards for engine code that is handed settings the contract should already have refused.</summary>
public static class Checks
{
    /// <summary>Returns <paramref name="value"/>, or throws one <see cref="ArgumentException"/> listing every problem.</summary>
    public static T Require<T>(T value, IEnumerable<string> errors, string what)
    {
        var problems = errors.ToArray();
        return problems.Length == 0 ? value : throw new ArgumentException($"Invalid {what}: {string.Join(" ", problems)}");
    }

    /// <summary>Strategy parameters within their model-independent bounds.</summary>
    public static T Require<T>(T parameters) where T : ISafetyStrategyParams =>
        Require(parameters, parameters.Errors(ModelFacts.Unknown).Select(e => e.Message), SafetyStrategies.Registry.For<T>().Name + " parameters");
}
