using System.Collections.Concurrent;
using System.Reflection;
using FineTuneService.Contracts.Judges;
using FineTuneService.Ml.Evaluation.Classifier;

namespace FineTuneService.Ml.Evaluation.Judges;

/// <summary>
/// What a judge may need to be built, shared by one process: the refusal keywords, the harm classifier (loaded on
/// first use) and the host's services (the external judge's typed HttpClient and options); null where there is no host.
/// </summary>
public sealed class HarmJudgeResources(RefusalKeywords refusalKeywords, Func<HarmClassifier> classifier, IServiceProvider? services = null)
{
    public RefusalKeywords RefusalKeywords => refusalKeywords;

    public HarmClassifier Classifier => classifier();

    public IServiceProvider? Services => services;
}

/// <summary>
/// The engine side of a registered harm judge (<see cref="SafetyJudges"/>): found by its <see cref="Registration"/>,
/// so the registration line is all the wiring it needs.
/// </summary>
public interface IRegisteredHarmJudge : IHarmJudge
{
    /// <summary>The registry line this class judges for (<c>SafetyJudges.MyJudge</c>).</summary>
    static abstract HarmJudgeDescriptor Registration { get; }

    /// <summary>The judge, or null when this process is not set up to run it (the external judge without an endpoint).</summary>
    static abstract IHarmJudge? Create(HarmJudgeResources resources);
}

/// <summary>Builds the judges of a list of registrations, each from the one <see cref="IRegisteredHarmJudge"/> class that names it.</summary>
public static class RegisteredHarmJudges
{
    private static readonly ConcurrentDictionary<Assembly, IReadOnlyDictionary<string, Type>> ByAssembly = new();

    /// <summary>
    /// The judges of <paramref name="registrations"/> that this process can run, in the order given (use
    /// <see cref="SafetyJudges.InReportOrder"/>: the first is the primary judge).
    /// </summary>
    public static IReadOnlyList<IHarmJudge> Create(IEnumerable<HarmJudgeDescriptor> registrations, HarmJudgeResources resources) =>
        registrations.Select(r => Create(r, resources)).OfType<IHarmJudge>().ToArray();

    /// <summary>
    /// The class that runs <paramref name="judge"/>: the one <see cref="IRegisteredHarmJudge"/> whose registration has
    /// its name, in the engine or in any loaded assembly built on it.
    /// </summary>
    public static Type ClassOf(HarmJudgeDescriptor judge)
    {
        var engine = typeof(RegisteredHarmJudges).Assembly;
        var engineName = engine.GetName().Name;
        var candidates = AppDomain.CurrentDomain.GetAssemblies()
            .Where(a => a == engine || !a.IsDynamic && a.GetReferencedAssemblies().Any(r => r.Name == engineName))
            .Select(a => ByAssembly.GetOrAdd(a, Discover).GetValueOrDefault(judge.Name))
            .OfType<Type>().Distinct().ToArray();
        return candidates.Length == 1 ? candidates[0] : throw new InvalidOperationException(
            $"Harm judge '{judge.Name}' needs exactly one class implementing IRegisteredHarmJudge with that registration; found {candidates.Length}.");
    }

    private static IHarmJudge? Create(HarmJudgeDescriptor judge, HarmJudgeResources resources)
    {
        var factory = typeof(RegisteredHarmJudges).GetMethod(nameof(CreateTyped), BindingFlags.NonPublic | BindingFlags.Static)!
            .MakeGenericMethod(ClassOf(judge));
        try
        {
            return (IHarmJudge?)factory.Invoke(null, [resources]);
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e.InnerException);
            throw;
        }
    }

    private static IHarmJudge? CreateTyped<TJudge>(HarmJudgeResources resources) where TJudge : IRegisteredHarmJudge =>
        TJudge.Create(resources);

    private static string RegistrationOf<TJudge>() where TJudge : IRegisteredHarmJudge => TJudge.Registration.Name;

    private static IReadOnlyDictionary<string, Type> Discover(Assembly assembly)
    {
        var registrationOf = typeof(RegisteredHarmJudges).GetMethod(nameof(RegistrationOf), BindingFlags.NonPublic | BindingFlags.Static)!;
        return LoadableTypes(assembly)
            .Where(t => t is { IsClass: true, IsAbstract: false, ContainsGenericParameters: false } && typeof(IRegisteredHarmJudge).IsAssignableFrom(t))
            .Select(t => (Name: (string)registrationOf.MakeGenericMethod(t).Invoke(null, null)!, Judge: t))
            .GroupBy(x => x.Name)
            .ToDictionary(g => g.Key, g => g.Count() == 1 ? g.Single().Judge
                : throw new InvalidOperationException($"Several classes judge for '{g.Key}': {string.Join(", ", g.Select(x => x.Judge.Name))}."));
    }

    private static IEnumerable<Type> LoadableTypes(Assembly assembly)
    {
        try
        {
            return assembly.GetTypes();
        }
        catch (ReflectionTypeLoadException e)
        {
            return e.Types.OfType<Type>();
        }
    }
}
