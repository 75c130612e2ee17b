using FineTuneService.Api.Auth;
using FineTuneService.Api.Contracts;
using FineTuneService.Api.Errors;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace FineTuneService.Api.Endpoints;

/// <summary>Admin API for tenant keys: <c>/v1/admin/tenants/{tenantId}/api_keys</c> (list, issue another, revoke).</summary>
public static class ApiKeysEndpoints
{
    public static IEndpointRouteBuilder MapApiKeys(this IEndpointRouteBuilder routes)
    {
        var keys = routes.MapGroup("/v1/admin/tenants/{tenantId}/api_keys").RequireAuthorization(FtsClaims.AdminPolicy).WithTags("Admin");
        keys.MapGet("/", ListApiKeys);
        keys.MapPost("/", CreateApiKey);
        keys.MapDelete("/{keyId}", RevokeApiKey);
        return routes;
    }

    /// <summary>List a tenant's keys, oldest first, revoked ones included (the keys themselves are never shown again).</summary>
    internal static async Task<Ok<ListResponse<ApiKeyObject>>> ListApiKeys(string tenantId, FineTuneDbContext db, CancellationToken cancellationToken)
    {
        await RequireTenantAsync(db, tenantId, cancellationToken);
        var rows = await db.ApiKeys.AsNoTracking().Where(k => k.TenantId == tenantId)
            .OrderBy(k => k.CreatedAt).ThenBy(k => k.Id).ToListAsync(cancellationToken);
        var data = rows.Select(k => ObjectOf(k)).ToList();
        return TypedResults.Ok(new ListResponse<ApiKeyObject>(data, false, data.FirstOrDefault()?.Id, data.LastOrDefault()?.Id));
    }

    /// <summary>Issue another key for a tenant (to rotate: issue, switch clients over, revoke the old one). The key is in this answer only.</summary>
    internal static async Task<Created<ApiKeyObject>> CreateApiKey(string tenantId, FineTuneDbContext db, CancellationToken cancellationToken)
    {
        await RequireTenantAsync(db, tenantId, cancellationToken);
        var (row, key) = ApiKeys.Issue(tenantId);
        db.ApiKeys.Add(row);
        await db.SaveChangesAsync(cancellationToken);
        return TypedResults.Created($"/v1/admin/tenants/{tenantId}/api_keys/{row.Id}", ObjectOf(row, key));
    }

    /// <summary>
    /// Revoke a key: from now on it answers 401 on this API host. Other API replicas remember accepted keys for
    /// <c>Auth:KeyCacheTtl</c> (30 s by default) and stop accepting it within that time. Revoking twice is harmless.
    /// </summary>
    internal static async Task<Ok<ApiKeyObject>> RevokeApiKey(string tenantId, string keyId, FineTuneDbContext db, TenantKeyCache tenantKeys,
        TimeProvider clock, CancellationToken cancellationToken)
    {
        var row = Guid.TryParse(keyId, out var id)
            ? await db.ApiKeys.SingleOrDefaultAsync(k => k.TenantId == tenantId && k.Id == id, cancellationToken)
            : null;
        if (row is null) throw ApiException.NotFound("API key", keyId, "key_id");
        if (row.RevokedAt is null)
        {
            row.RevokedAt = clock.GetUtcNow().UtcDateTime;
            await db.SaveChangesAsync(cancellationToken);
        }
        tenantKeys.Forget(row.KeyHash);
        return TypedResults.Ok(ObjectOf(row));
    }

    private static async Task RequireTenantAsync(FineTuneDbContext db, string tenantId, CancellationToken cancellationToken)
    {
        if (!await db.Tenants.AnyAsync(t => t.Id == tenantId, cancellationToken)) throw ApiException.NotFound("tenant", tenantId, "tenant_id");
    }

    private static ApiKeyObject ObjectOf(ApiKey key, string? plaintext = null) =>
        new(key.Id.ToString(), key.TenantId, key.Prefix + "…", UnixTime.Seconds(key.CreatedAt), UnixTime.Seconds(key.RevokedAt), plaintext);
}
