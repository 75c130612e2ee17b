using System.Text.Json;
using System.Text.Json.Nodes;

namespace FineTuneService.Contracts.Safety;

/// <summary>
/// One registered safety strategy: its wire name, the phase it acts in, its parameters record and what it does.
/// Everything else derives from it: request validation, the API docs of <c>safety.params</c>, the worker's plan and
/// the benchmark's rows (the engine finds the class that runs it by its parameters type).
/// </summary>
public sealed class SafetyStrategyDescriptor
{
    internal SafetyStrategyDescriptor(string name, SafetyPhase phase, Type paramsType, string description, string? exclusiveGroup)
    {
        Name = name;
        Phase = phase;
        ParamsType = paramsType;
        Description = description;
        ExclusiveGroup = exclusiveGroup;
        Fields = ParamsRecords.Fields(paramsType);
        Defaults = Bind(JsonDocument.Parse("{}").RootElement);
    }

    /// <summary>Wire name in <c>safety.strategy</c> and key in <c>safety.params</c>, e.g. "antidote".</summary>
    public string Name { get; }
    public SafetyPhase Phase { get; }
    public Type ParamsType { get; }
    public string Description { get; }

    /// <summary>Strategies of one group do the same job in different ways and cannot be combined (e.g. the merges).</summary>
    public string? ExclusiveGroup { get; }

    /// <summary>The parameters' fields in declaration order, for docs and error messages.</summary>
    public IReadOnlyList<SafetyParamField> Fields { get; }

    /// <summary>The parameters with every field at its default.</summary>
    public ISafetyStrategyParams Defaults { get; }

    /// <summary>Reads <c>safety.params.&lt;name&gt;</c>; omitted fields keep their defaults.</summary>
    /// <exception cref="ContractViolation">Not an object, an unknown field or a value of the wrong type.</exception>
    public ISafetyStrategyParams Bind(JsonElement value, string param = "") =>
        (ISafetyStrategyParams)ParamsRecords.Bind(value, ParamsType, Fields, param);

    /// <summary>The parameters as stored and echoed: every field, snake_case.</summary>
    public JsonObject ToJson(ISafetyStrategyParams parameters) => ParamsRecords.ToJson(parameters, ParamsType);

    public override string ToString() => Name;
}

/// <summary>A field of a strategy's parameters: wire name, type, default and meaning.</summary>
public sealed record SafetyParamField(string Name, Type Type, object? Default, string Description)
{
    /// <summary>"a number", "an integer", "true or false", "a string" (nullable types add "or null").</summary>
    public string Kind
    {
        get
        {
            var type = Nullable.GetUnderlyingType(Type) ?? Type;
            var kind = type == typeof(int) || type == typeof(long) ? "an integer"
                : type == typeof(double) || type == typeof(float) ? "a number"
                : type == typeof(bool) ? "true or false"
                : "a string";
            return Nullable.GetUnderlyingType(Type) is null ? kind : kind + " or null";
        }
    }
}
