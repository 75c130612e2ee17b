using FineTuneService.Contracts.Safety.Hardening;

namespace FineTuneService.Ml.Safety.Hardening;

/// <summary>
/// The engine class of each registered hardening method (<see cref="HardeningMethods"/>), found by its parameters
/// type: a second method adds one line here.
/// </summary>
public static class BaseModelHardeners
{
    private static readonly Dictionary<Type, Func<IHardeningParams, long, IBaseModelHardener>> ByParams = new()
    {
        [typeof(BoosterParams)] = (p, seed) => new BoosterHardener((BoosterParams)p, seed),
    };

    public static IBaseModelHardener Create(IHardeningParams parameters, long seed = 1) =>
        ByParams.TryGetValue(parameters.GetType(), out var create) ? create(parameters, seed)
            : throw new ArgumentException($"No hardener implements {parameters.GetType().Name}.", nameof(parameters));
}
