using System.Text.Json.Nodes;
using FineTuneService.Api.Contracts;
using FineTuneService.Contracts.Safety.Hardening;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace FineTuneService.Api.Documentation;

/// <summary>
/// Documents the harden request's <c>method</c> and <c>params</c> from the hardening registry: the method names, what
/// each does, and its parameters with their types, defaults and meaning (the parameters record's descriptions). A
/// method registered in <see cref="HardeningMethods"/> appears here without another edit.
/// </summary>
internal sealed class HardeningSchemaFilter : ISchemaFilter
{
    public void Apply(IOpenApiSchema schema, SchemaFilterContext context)
    {
        if (context.Type != typeof(HardenModelRequest) || schema is not OpenApiSchema { Properties: { } properties }) return;
        var registry = HardeningMethods.Registry;
        if (SchemaProperties.Key(properties, nameof(HardenModelRequest.Method)) is { } method)
            properties[method] = new OpenApiSchema
            {
                Type = JsonSchemaType.String,
                Enum = registry.Names.Select(n => (JsonNode)n).ToList(),
                Description = string.Join(" ", ["A registered hardening method.", .. registry.All.Select(m => $"`{m.Name}`: {m.Description}")]),
            };
        if (SchemaProperties.Key(properties, nameof(HardenModelRequest.Params)) is { } parameters)
            properties[parameters] = new OpenApiSchema
            {
                Description = "The method's parameters; omitted fields keep their defaults. Bounds are checked when the run is created (a 400 naming params.<field>).",
                OneOf = registry.All.Select(m => (IOpenApiSchema)new OpenApiSchema
                {
                    Type = JsonSchemaType.Object,
                    Title = m.Name,
                    Description = $"Parameters of `{m.Name}`.",
                    AdditionalPropertiesAllowed = false,
                    Properties = m.Fields.ToDictionary(f => f.Name, f => (IOpenApiSchema)SafetySchemaFilter.Field(f)),
                }).ToList(),
            };
    }
}
