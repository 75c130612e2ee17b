namespace FineTuneService.Contracts.Safety;

/// <summary>
/// The parameters of one safety strategy: a record whose snake_case fields are <c>safety.params.&lt;strategy&gt;</c>,
/// every field optional with its default in the constructor. Registered with its strategy in <see cref="SafetyStrategies"/>.
/// </summary>
public interface ISafetyStrategyParams
{
    /// <summary>Every bound these values break for <paramref name="model"/>; empty when they are valid.</summary>
    IEnumerable<ParamError> Errors(ModelFacts model);
}

/// <param name="Field">The snake_case field at fault, or null when the parameters as a whole are.</param>
public readonly record struct ParamError(string? Field, string Message);
