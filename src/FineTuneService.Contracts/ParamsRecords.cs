using System.ComponentModel;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using FineTuneService.Contracts.Safety;

namespace FineTuneService.Contracts;

/// <summary>
/// What the registries (safety strategies, hardening methods) do with a parameters record: list its fields, bind it
/// from the wire with errors that name the field, and echo it back.
/// </summary>
internal static class ParamsRecords
{
    /// <summary>The record's constructor parameters as wire fields, in declaration order, with their descriptions.</summary>
    public static SafetyParamField[] Fields(Type paramsType) =>
        paramsType.GetConstructors().Single().GetParameters()
            .Select(p => new SafetyParamField(ContractJson.Name(p.Name!), p.ParameterType, p.DefaultValue,
                paramsType.GetProperty(p.Name!)?.GetCustomAttribute<DescriptionAttribute>()?.Description ?? ""))
            .ToArray();

    /// <summary>Reads the record from an object (omitted fields keep their defaults).</summary>
    /// <exception cref="ContractViolation">Not an object, an unknown field or a value of the wrong type.</exception>
    public static object Bind(JsonElement value, Type paramsType, IReadOnlyList<SafetyParamField> fields, string param)
    {
        if (value.ValueKind != JsonValueKind.Object) throw new ContractViolation(param, $"{param} must be an object.");
        try
        {
            return value.Deserialize(paramsType, ContractJson.Options)!;
        }
        catch (JsonException e)
        {
            var field = FieldAt(e.Path);
            var known = fields.FirstOrDefault(f => f.Name == field);
            var allowed = $"Allowed fields: {string.Join(", ", fields.Select(f => f.Name))}.";
            throw known is null
                ? new ContractViolation(field is null ? param : $"{param}.{field}",
                    field is null ? $"{param}: {e.Message} {allowed}" : $"{param} has no field '{field}'. {allowed}")
                : new ContractViolation($"{param}.{known.Name}", $"{param}.{known.Name} must be {known.Kind}.");
        }
    }

    /// <summary>The record as stored and echoed: every field, snake_case.</summary>
    public static JsonObject ToJson(object parameters, Type paramsType) =>
        JsonSerializer.SerializeToNode(parameters, paramsType, ContractJson.Options)!.AsObject();

    /// <summary>The first property of a JSON path such as "$.dense_ratio".</summary>
    private static string? FieldAt(string? path) =>
        path is { Length: > 2 } && path.StartsWith("$.", StringComparison.Ordinal) ? path[2..].Split('.', '[')[0] : null;
}
