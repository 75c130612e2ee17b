using Microsoft.OpenApi;

namespace FineTuneService.Api.Documentation;

/// <summary>What the schema filters share.</summary>
internal static class SchemaProperties
{
    /// <summary>
    /// The key of the property <paramref name="name"/> names (a C# property name or a wire name) in a generated schema,
    /// whose keys follow the serializer's naming policy; null when the schema has none.
    /// </summary>
    public static string? Key(IDictionary<string, IOpenApiSchema> properties, string name) =>
        properties.Keys.FirstOrDefault(k => k.Equals(name, StringComparison.OrdinalIgnoreCase));
}
