using System.Text.Json.Nodes;
using FineTuneService.Api.Contracts;
using FineTuneService.Contracts;
using FineTuneService.Contracts.Safety;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace FineTuneService.Api.Documentation;

/// <summary>
/// Documents the create-job request's <c>safety</c> object from the strategy registry: the strategy names, and for
/// each strategy what it does, when it acts and its parameters with their types, defaults and meaning. A strategy
/// registered in <see cref="SafetyStrategies"/> appears here without another edit.
/// </summary>
internal sealed class SafetySchemaFilter : ISchemaFilter
{
    public void Apply(IOpenApiSchema schema, SchemaFilterContext context)
    {
        if (context.Type != typeof(CreateFineTuningJobRequest) || schema is not OpenApiSchema { Properties: { } properties }) return;
        var key = SchemaProperties.Key(properties, nameof(CreateFineTuningJobRequest.Safety));
        if (key is not null) properties[key] = Schema(SafetyStrategies.Registry);
    }

    internal static OpenApiSchema Schema(SafetyStrategyRegistry registry)
    {
        var names = registry.Names.Select(n => (JsonNode)n).ToList();
        return new OpenApiSchema
        {
            Type = JsonSchemaType.Object,
            Description = "Extension: the safety strategies of this job and their parameters. Strategies run in phase order "
                + "(before training, every step, after training) whatever the list order; each post-training step is "
                + "evaluated as its own stage. Combinations and bounds are checked when the job is created.",
            AdditionalPropertiesAllowed = false,
            Properties = new Dictionary<string, IOpenApiSchema>
            {
                ["strategy"] = new OpenApiSchema
                {
                    Description = $"A strategy name or a list of them; default \"{SafetyStrategyRegistry.None}\", which combines with no other.",
                    OneOf =
                    [
                        new OpenApiSchema { Type = JsonSchemaType.String, Enum = names },
                        new OpenApiSchema { Type = JsonSchemaType.Array, Items = new OpenApiSchema { Type = JsonSchemaType.String, Enum = names.Select(n => n.DeepClone()).ToList() } },
                    ],
                },
                ["params"] = new OpenApiSchema
                {
                    Type = JsonSchemaType.Object,
                    Description = "Parameters keyed by strategy name, only for strategies in `strategy`; omitted fields keep their defaults.",
                    AdditionalPropertiesAllowed = false,
                    Properties = registry.All.ToDictionary(s => s.Name, s => (IOpenApiSchema)Strategy(s)),
                },
            },
        };
    }

    private static OpenApiSchema Strategy(SafetyStrategyDescriptor strategy) => new()
    {
        Type = JsonSchemaType.Object,
        Description = $"{strategy.Description} Acts {Phase(strategy.Phase)}."
            + (strategy.ExclusiveGroup is null ? "" : $" Not combined with other '{strategy.ExclusiveGroup}' strategies."),
        AdditionalPropertiesAllowed = false,
        Properties = strategy.Fields.ToDictionary(f => f.Name, f => (IOpenApiSchema)Field(f)),
    };

    internal static OpenApiSchema Field(SafetyParamField field)
    {
        var type = Nullable.GetUnderlyingType(field.Type) ?? field.Type;
        var kind = type == typeof(int) || type == typeof(long) ? JsonSchemaType.Integer
            : type == typeof(double) || type == typeof(float) ? JsonSchemaType.Number
            : type == typeof(bool) ? JsonSchemaType.Boolean
            : JsonSchemaType.String;
        return new OpenApiSchema
        {
            Type = Nullable.GetUnderlyingType(field.Type) is null ? kind : kind | JsonSchemaType.Null,
            Description = field.Description,
            Default = System.Text.Json.JsonSerializer.SerializeToNode(field.Default, ContractJson.Options),
        };
    }

    private static string Phase(SafetyPhase phase) => phase switch
    {
        SafetyPhase.BeforeTraining => "before training",
        SafetyPhase.EveryStep => "on every optimizer step",
        _ => "after training",
    };
}
