using System.Security.Claims;
using System.Text.Encodings.Web;
using FineTuneService.Api.Errors;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.Options;

namespace FineTuneService.Api.Auth;

/// <summary>
/// <c>Authorization: Bearer &lt;key&gt;</c>: the admin key gives the admin role, a tenant key (looked up by its
/// SHA-256, through <see cref="TenantKeyCache"/>) the tenant claim. Failures answer 401 in OpenAI's envelope.
/// </summary>
internal sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder,
    IOptions<AuthOptions> auth, TenantKeyCache tenantKeys, IOptions<JsonOptions> json)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "Bearer";

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var key = BearerKey(Request);
        if (key is null) return AuthenticateResult.NoResult();

        if (ApiKeys.Matches(key, auth.Value.AdminKey!))
            return Success(new Claim(FtsClaims.Role, FtsClaims.AdminRole), new Claim(FtsClaims.ActorClaim, "admin:" + ApiKeys.DisplayPrefix(key)));

        var tenantId = await tenantKeys.TenantOfAsync(ApiKeys.Hash(key), Context.RequestAborted);
        return tenantId is null ? AuthenticateResult.Fail("Unknown API key") : Success(new Claim(FtsClaims.TenantIdClaim, tenantId));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.StatusCode = StatusCodes.Status401Unauthorized;
        Response.Headers.WWWAuthenticate = "Bearer";
        await Response.WriteAsJsonAsync(OpenAiError.From(ApiException.InvalidApiKey()), json.Value.SerializerOptions);
    }

    protected override async Task HandleForbiddenAsync(AuthenticationProperties properties)
    {
        Response.StatusCode = StatusCodes.Status403Forbidden;
        await Response.WriteAsJsonAsync(OpenAiError.From(new ApiException(403,
            "This key may not use this endpoint: /v1/admin takes the admin key, every other route a tenant key.", "invalid_request_error", null, "insufficient_permissions")), json.Value.SerializerOptions);
    }

    internal static string? BearerKey(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        const string bearer = "Bearer ";
        return header.StartsWith(bearer, StringComparison.OrdinalIgnoreCase) && header.Length > bearer.Length
            ? header[bearer.Length..].Trim()
            : null;
    }

    private AuthenticateResult Success(params Claim[] claims) =>
        AuthenticateResult.Success(new AuthenticationTicket(
            new ClaimsPrincipal(new ClaimsIdentity(claims, SchemeName)), SchemeName));
}
