using System.Text.Json.Nodes;
using FineTuneService.Api.Contracts;
using FineTuneService.Contracts.Judges;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace FineTuneService.Api.Documentation;

/// <summary>
/// Documents every request's <c>judge</c> field from the judge registry: the names it accepts and what each judge
/// does. A judge registered in <see cref="SafetyJudges"/> appears here without another edit.
/// </summary>
internal sealed class JudgeSchemaFilter : ISchemaFilter
{
    private static readonly Type[] Requests = [typeof(CreateSafetyEvaluationRequest), typeof(SafetyPolicyRequest)];

    public void Apply(IOpenApiSchema schema, SchemaFilterContext context)
    {
        if (!Requests.Contains(context.Type) || schema is not OpenApiSchema { Properties: { } properties }) return;
        var key = SchemaProperties.Key(properties, "judge");
        if (key is null) return;
        var summary = properties[key].Description;
        properties[key] = Schema(summary);
    }

    internal static OpenApiSchema Schema(string? summary) => new()
    {
        Type = JsonSchemaType.String | JsonSchemaType.Null,
        Enum = SafetyJudges.All.Select(j => (JsonNode)j.Name).ToList(),
        Description = string.Join(" ", [summary, .. SafetyJudges.All.Select(j => $"`{j.Name}`: {j.Description}")]),
    };
}
