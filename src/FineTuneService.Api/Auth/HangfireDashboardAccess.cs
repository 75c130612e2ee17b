using Hangfire.Dashboard;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.Options;

namespace FineTuneService.Api.Auth;

/// <summary>
/// Admin-only access to the Hangfire dashboard from a browser: open <c>/hangfire?access_token=&lt;admin key&gt;</c> once;
/// that sets an encrypted, HttpOnly cookie for this path and redirects to the clean URL. A bearer admin key works too.
/// </summary>
internal sealed class HangfireDashboardAccess(IDataProtectionProvider protection, IOptions<AuthOptions> auth)
    : IDashboardAsyncAuthorizationFilter
{
    public const string Path = "/hangfire";
    private const string CookieName = "fts_admin";
    private const string QueryKey = "access_token";
    private static readonly TimeSpan Lifetime = TimeSpan.FromHours(8);

    private readonly ITimeLimitedDataProtector _protector =
        protection.CreateProtector("FineTuneService.HangfireDashboard").ToTimeLimitedDataProtector();

    /// <summary>Turns a valid <c>access_token</c> query into the cookie; everything else passes through.</summary>
    public async Task SignInFromQueryAsync(HttpContext context, RequestDelegate next)
    {
        if (context.Request.Query.TryGetValue(QueryKey, out var key) && ApiKeys.Matches(key.ToString(), auth.Value.AdminKey!))
        {
            context.Response.Cookies.Append(CookieName, _protector.Protect(FtsClaims.AdminRole, Lifetime), new CookieOptions
            {
                HttpOnly = true,
                SameSite = SameSiteMode.Strict,
                Secure = context.Request.IsHttps,
                Path = Path,
                MaxAge = Lifetime,
            });
            context.Response.Redirect(context.Request.PathBase + Path);
            return;
        }
        await next(context);
    }

    public Task<bool> AuthorizeAsync(DashboardContext context)
    {
        var http = context.GetHttpContext();
        if (ApiKeyAuthenticationHandler.BearerKey(http.Request) is { } key && ApiKeys.Matches(key, auth.Value.AdminKey!))
            return Task.FromResult(true);
        return Task.FromResult(http.Request.Cookies.TryGetValue(CookieName, out var cookie) && IsAdminCookie(cookie));
    }

    private bool IsAdminCookie(string cookie)
    {
        try
        {
            return _protector.Unprotect(cookie) == FtsClaims.AdminRole;
        }
        catch (System.Security.Cryptography.CryptographicException)
        {
            return false; // expired, tampered, or from before a key-ring change
        }
    }
}
