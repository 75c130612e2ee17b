using System.Collections.Concurrent;
using System.Reflection;
using FineTuneService.Contracts.Safety;
using FineTuneService.Ml.Training;

namespace FineTuneService.Ml.Safety.Strategies;

/// <summary>A safety request that cannot be honoured on this worker (e.g. a safety data set is missing); the message says why.</summary>
public sealed class SafetyStrategyConfigurationException(string message) : Exception(message);

/// <summary>
/// The engine side of a registered safety strategy (<see cref="SafetyStrategies"/>): the trainer hook that runs it,
/// built from its parameters and the job's safety data. Found by its parameters type, so registering the strategy
/// once in the contract is all the wiring it needs.
/// </summary>
public interface ISafetyTrainingStrategy<TParams> : ITrainingStrategy where TParams : ISafetyStrategyParams
{
    /// <exception cref="SafetyStrategyConfigurationException">The data the strategy needs is missing.</exception>
    static abstract ITrainingStrategy Create(TParams parameters, EncodedSafetyData data);
}

/// <summary>
/// Builds a plan's trainer hooks, in run order (<see cref="SafetyPlan.RunOrder"/>). Hooks compose: e.g. frozen_layers +
/// projected_gradients + antidote freeze first, edit the remaining gradients each step, and prune after the last one.
/// Everything random is seeded from the job seed (<see cref="SftTrainerOptions.Seed"/>).
/// </summary>
public static class SafetyTrainingStrategies
{
    private static readonly ConcurrentDictionary<Assembly, IReadOnlyDictionary<Type, Type>> ByAssembly = new();

    /// <exception cref="SafetyStrategyConfigurationException">A strategy's data is missing.</exception>
    public static IReadOnlyList<ITrainingStrategy> Create(SafetyPlan plan, EncodedSafetyData data) =>
        plan.RunOrder.Select(choice => Create(choice, data)).ToArray();

    /// <summary>The class that runs <paramref name="strategy"/>: the one <see cref="ISafetyTrainingStrategy{TParams}"/> of its parameters type.</summary>
    public static Type ClassOf(SafetyStrategyDescriptor strategy)
    {
        var candidates = new[] { typeof(SafetyTrainingStrategies).Assembly, strategy.ParamsType.Assembly }.Distinct()
            .Select(a => ByAssembly.GetOrAdd(a, Discover).GetValueOrDefault(strategy.ParamsType))
            .OfType<Type>().ToArray();
        return candidates.Length == 1 ? candidates[0] : throw new InvalidOperationException(
            $"Safety strategy '{strategy.Name}' needs exactly one class implementing ISafetyTrainingStrategy<{strategy.ParamsType.Name}>; found {candidates.Length}.");
    }

    private static ITrainingStrategy Create(SafetyStrategyChoice choice, EncodedSafetyData data)
    {
        var factory = typeof(SafetyTrainingStrategies).GetMethod(nameof(CreateTyped), BindingFlags.NonPublic | BindingFlags.Static)!
            .MakeGenericMethod(ClassOf(choice.Strategy), choice.Strategy.ParamsType);
        try
        {
            return (ITrainingStrategy)factory.Invoke(null, [choice.Params, data])!;
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e.InnerException);
            throw;
        }
    }

    private static ITrainingStrategy CreateTyped<TStrategy, TParams>(TParams parameters, EncodedSafetyData data)
        where TStrategy : ISafetyTrainingStrategy<TParams> where TParams : ISafetyStrategyParams =>
        TStrategy.Create(parameters, data);

    private static IReadOnlyDictionary<Type, Type> Discover(Assembly assembly) =>
        assembly.GetTypes()
            .Where(t => t is { IsClass: true, IsAbstract: false })
            .SelectMany(t => t.GetInterfaces()
                .Where(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(ISafetyTrainingStrategy<>))
                .Select(i => (Params: i.GetGenericArguments()[0], Strategy: t)))
            .GroupBy(x => x.Params)
            .ToDictionary(g => g.Key, g => g.Count() == 1 ? g.Single().Strategy
                : throw new InvalidOperationException($"Several classes run the safety strategy with parameters {g.Key.Name}: {string.Join(", ", g.Select(x => x.Strategy.Name))}."));
}
