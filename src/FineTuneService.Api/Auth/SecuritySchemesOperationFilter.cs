using Microsoft.AspNetCore.Authorization;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace FineTuneService.Api.Auth;

/// <summary>
/// Documents which key each operation takes, from its authorization policy: tenant routes the tenant key scheme,
/// admin routes the admin key scheme, routes open to both either one. Swagger UI then shows a padlock per
/// operation and sends the key authorized for that scheme.
/// </summary>
internal sealed class SecuritySchemesOperationFilter : IOperationFilter
{
    /// <summary>Swagger scheme of tenant keys (sk-fts-…).</summary>
    public const string TenantScheme = ApiKeyAuthenticationHandler.SchemeName;

    /// <summary>Swagger scheme of the admin key (same header, different key).</summary>
    public const string AdminScheme = "AdminKey";

    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        var policies = context.ApiDescription.ActionDescriptor.EndpointMetadata.OfType<IAuthorizeData>().Select(a => a.Policy).ToHashSet();
        var schemes = policies.Contains(FtsClaims.AdminPolicy) ? [AdminScheme]
            : policies.Contains(FtsClaims.TenantOrAdminPolicy) ? [TenantScheme, AdminScheme]
            : policies.Contains(FtsClaims.TenantPolicy) ? new[] { TenantScheme }
            : [];
        if (schemes.Length == 0) return;
        // Alternatives: one requirement per scheme (either key is accepted).
        operation.Security = schemes
            .Select(scheme => new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(scheme, context.Document)] = [] })
            .ToList();
        operation.Responses ??= new OpenApiResponses();
        operation.Responses.TryAdd("401", new OpenApiResponse { Description = "Missing or unknown API key (OpenAI error envelope)." });
        operation.Responses.TryAdd("403", new OpenApiResponse { Description = "This kind of key may not use this route (OpenAI error envelope)." });
    }
}
