using System.Security.Claims;

namespace FineTuneService.Api.Auth;

internal static class FtsClaims
{
    public const string TenantIdClaim = "fts:tenant";
    /// <summary>Who made a change, for audit rows: "admin:" and the admin key's display prefix.</summary>
    public const string ActorClaim = "fts:actor";
    public const string Role = ClaimTypes.Role;
    public const string AdminRole = "admin";
    public const string TenantPolicy = "tenant";
    public const string AdminPolicy = "admin";
    /// <summary>Routes both kinds of key may use (e.g. safety evaluations): a tenant sees its own rows, the admin all.</summary>
    public const string TenantOrAdminPolicy = "tenant_or_admin";

    /// <summary>The caller's tenant; only called behind the tenant policy, which guarantees the claim.</summary>
    public static string TenantId(this ClaimsPrincipal user) =>
        user.FindFirstValue(TenantIdClaim) ?? throw new InvalidOperationException("The endpoint requires the tenant policy.");

    /// <summary>The caller's tenant, or null for the admin key (behind <see cref="TenantOrAdminPolicy"/>).</summary>
    public static string? TenantIdOrNull(this ClaimsPrincipal user) => user.FindFirstValue(TenantIdClaim);

    public static bool IsAdmin(this ClaimsPrincipal user) => user.IsInRole(AdminRole);

    /// <summary>The caller as recorded in audit rows (e.g. safety decisions), with an optional self-given name.</summary>
    public static string Actor(this ClaimsPrincipal user, string? name = null)
    {
        var actor = user.FindFirstValue(ActorClaim) ?? (user.FindFirstValue(TenantIdClaim) is { } tenant ? "tenant:" + tenant : "unknown");
        return string.IsNullOrWhiteSpace(name) ? actor : $"{actor} ({name.Trim()[..Math.Min(name.Trim().Length, 100)]})";
    }
}
