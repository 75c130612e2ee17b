using System.Text.Json;
using System.Text.Json.Nodes;

namespace FineTuneService.Contracts.Safety.Hardening;

/// <summary>
/// Every alignment-stage hardening method the provider can run on a base model: one line each. A second method (a
/// Vaccine-style perturbation-aware alignment) is its parameters record, one line here and its engine class
/// (an <c>IBaseModelHardener</c> in FineTuneService.Ml).
/// </summary>
public static class HardeningMethods
{
    public static HardeningMethodRegistry Registry { get; } = new(
    [
        HardeningMethod.Define<BoosterParams>("booster",
            "Aligns on harmful prompts with refusals while shrinking how much one normalised harmful-gradient step lowers the harmful loss (Booster, Huang et al.)."),
    ]);
}

/// <summary>The registered hardening methods by wire name and by parameters type.</summary>
public sealed class HardeningMethodRegistry
{
    private readonly Dictionary<string, HardeningMethodDescriptor> _byName;
    private readonly Dictionary<Type, HardeningMethodDescriptor> _byParams;

    public HardeningMethodRegistry(IEnumerable<HardeningMethodDescriptor> methods)
    {
        All = methods.ToArray();
        _byName = All.ToDictionary(m => m.Name, StringComparer.Ordinal);
        _byParams = All.ToDictionary(m => m.ParamsType);
    }

    public IReadOnlyList<HardeningMethodDescriptor> All { get; }

    public IReadOnlyList<string> Names => All.Select(m => m.Name).ToArray();

    public HardeningMethodDescriptor? Find(string name) => _byName.GetValueOrDefault(name);

    public HardeningMethodDescriptor For(Type paramsType) => _byParams.GetValueOrDefault(paramsType)
        ?? throw new ArgumentException($"No hardening method is registered with parameters {paramsType.Name}.", nameof(paramsType));
}

/// <summary>Builds descriptors; see <see cref="HardeningMethods"/>.</summary>
public static class HardeningMethod
{
    public static HardeningMethodDescriptor Define<TParams>(string name, string description) where TParams : IHardeningParams =>
        new(name, typeof(TParams), description);
}

/// <summary>One hardening method: wire name, parameters record and what it does; binding and echoing derive from it.</summary>
public sealed class HardeningMethodDescriptor
{
    internal HardeningMethodDescriptor(string name, Type paramsType, string description)
    {
        Name = name;
        ParamsType = paramsType;
        Description = description;
        Fields = ParamsRecords.Fields(paramsType);
    }

    public string Name { get; }
    public Type ParamsType { get; }
    public string Description { get; }
    public IReadOnlyList<SafetyParamField> Fields { get; }

    /// <summary>Reads the method's parameters (omitted fields keep their defaults) and checks their bounds.</summary>
    /// <exception cref="ContractViolation">Not an object, an unknown field, a value of the wrong type or out of bounds.</exception>
    public IHardeningParams Bind(JsonElement? value, string param = "params")
    {
        var element = value ?? JsonDocument.Parse("{}").RootElement;
        if (element.ValueKind == JsonValueKind.Null) element = JsonDocument.Parse("{}").RootElement;
        var parameters = (IHardeningParams)ParamsRecords.Bind(element, ParamsType, Fields, param);
        foreach (var error in parameters.Errors())
            throw new ContractViolation(error.Field is null ? param : $"{param}.{error.Field}", error.Message);
        return parameters;
    }

    /// <summary>The parameters as stored and echoed in the new model's lineage: every field, snake_case.</summary>
    public JsonObject ToJson(IHardeningParams parameters) => ParamsRecords.ToJson(parameters, ParamsType);

    public override string ToString() => Name;
}
