using System.Security.Claims;

namespace FineTuneService.Api.Auth;

internal static class FtsClaims
{
    public const string TenantIdClaim = "fts:tenant";
    public const string Role = ClaimTypes.Role;
    public const string AdminRole = "admin";
    public const string TenantPolicy = "tenant";
    public const string AdminPolicy = "admin";

    /// <summary>The caller's tenant; only called behind the tenant policy, which guarantees the claim.</summary>
    public static string TenantId(this ClaimsPrincipal user) =>
        user.FindFirstValue(TenantIdClaim) ?? throw new InvalidOperationException("The endpoint requires the tenant policy.");
}
