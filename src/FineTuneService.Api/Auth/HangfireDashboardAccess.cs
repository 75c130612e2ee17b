using System.Net;
using Hangfire.Dashboard;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.Options;

namespace FineTuneService.Api.Auth;

/// <summary>
/// Admin-only access to the Hangfire dashboard from a browser without the key in any URL: <c>/hangfire/login</c> is a
/// form that POSTs the admin key and gets an encrypted, HttpOnly cookie for <c>/hangfire</c> (8 hours), then redirects
/// to the dashboard. A bearer admin key works too. The cookie is protected with the Data Protection key ring kept in
/// PostgreSQL, so every API replica behind a load balancer accepts it.
/// </summary>
internal sealed class HangfireDashboardAccess(IDataProtectionProvider protection, IOptions<AuthOptions> auth)
    : IDashboardAsyncAuthorizationFilter
{
    public const string Path = "/hangfire";
    public const string LoginPath = Path + "/login";
    public const string LogoutPath = Path + "/logout";
    public const string KeyField = "key";
    private const string CookieName = "fts_admin";
    private static readonly TimeSpan Lifetime = TimeSpan.FromHours(8);

    private readonly ITimeLimitedDataProtector _protector =
        protection.CreateProtector("FineTuneService.HangfireDashboard").ToTimeLimitedDataProtector();

    /// <summary>
    /// Serves the login form and its POST, the logout POST, and sends a browser without access to the form;
    /// everything else goes on to the dashboard.
    /// </summary>
    public async Task HandleAsync(HttpContext context, RequestDelegate next)
    {
        var request = context.Request;
        if (request.Path.Equals(LoginPath, StringComparison.OrdinalIgnoreCase))
        {
            if (HttpMethods.IsPost(request.Method) && request.HasFormContentType)
            {
                var form = await request.ReadFormAsync(context.RequestAborted);
                if (ApiKeys.Matches(form[KeyField].ToString(), auth.Value.AdminKey!))
                {
                    context.Response.Cookies.Append(CookieName, _protector.Protect(FtsClaims.AdminRole, Lifetime), CookieOptions(context));
                    context.Response.Redirect(request.PathBase + Path);
                    return;
                }
                await WriteLoginFormAsync(context, StatusCodes.Status401Unauthorized, "That is not the admin key.");
                return;
            }
            await WriteLoginFormAsync(context, StatusCodes.Status200OK, null);
            return;
        }
        if (request.Path.Equals(LogoutPath, StringComparison.OrdinalIgnoreCase) && HttpMethods.IsPost(request.Method))
        {
            context.Response.Cookies.Delete(CookieName, CookieOptions(context));
            context.Response.Redirect(request.PathBase + LoginPath);
            return;
        }
        if (HttpMethods.IsGet(request.Method) && !IsAdmin(context) && AcceptsHtml(request))
        {
            context.Response.Redirect(request.PathBase + LoginPath);
            return;
        }
        await next(context);
    }

    public Task<bool> AuthorizeAsync(DashboardContext context) => Task.FromResult(IsAdmin(context.GetHttpContext()));

    private bool IsAdmin(HttpContext http)
    {
        if (ApiKeyAuthenticationHandler.BearerKey(http.Request) is { } key && ApiKeys.Matches(key, auth.Value.AdminKey!)) return true;
        return http.Request.Cookies.TryGetValue(CookieName, out var cookie) && IsAdminCookie(cookie);
    }

    private bool IsAdminCookie(string cookie)
    {
        try
        {
            return _protector.Unprotect(cookie) == FtsClaims.AdminRole;
        }
        catch (System.Security.Cryptography.CryptographicException)
        {
            return false; // expired, tampered, or protected with a key this ring does not hold
        }
    }

    /// <summary>Secure whenever the request is HTTPS, including HTTPS terminated at a trusted proxy (forwarded headers).</summary>
    private static CookieOptions CookieOptions(HttpContext context) => new()
    {
        HttpOnly = true,
        SameSite = SameSiteMode.Strict,
        Secure = context.Request.IsHttps,
        Path = Path,
        MaxAge = Lifetime,
    };

    private static bool AcceptsHtml(HttpRequest request) =>
        request.Headers.Accept.Any(value => value?.Contains("text/html", StringComparison.OrdinalIgnoreCase) == true);

    private static Task WriteLoginFormAsync(HttpContext context, int status, string? error)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/html; charset=utf-8";
        context.Response.Headers.CacheControl = "no-store";
        var action = WebUtility.HtmlEncode(context.Request.PathBase + LoginPath);
        var message = error is null ? "" : $"<p role=\"alert\">{WebUtility.HtmlEncode(error)}</p>";
        return context.Response.WriteAsync($$"""
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>FineTuneService jobs: sign in</title>
            <style>body{font-family:sans-serif;max-width:28rem;margin:4rem auto}input{width:100%;margin:.5rem 0;padding:.4rem}</style>
            </head><body>
            <h1>Hangfire dashboard</h1>
            {{message}}
            <form method="post" action="{{action}}">
              <label for="key">Admin key</label>
              <input id="key" name="{{KeyField}}" type="password" autocomplete="current-password" required autofocus>
              <button type="submit">Sign in</button>
            </form>
            </body></html>
            """);
    }
}
