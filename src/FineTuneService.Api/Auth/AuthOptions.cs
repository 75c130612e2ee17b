namespace FineTuneService.Api.Auth;

/// <summary>Authentication settings: section "Auth"; the admin key may also come from the FTS_ADMIN_KEY variable.</summary>
public sealed record AuthOptions
{
    public const string Section = "Auth";

    /// <summary>Documented in the README; accepted only in the Development environment.</summary>
    public const string DevelopmentAdminKey = "sk-fts-admin-dev";

    /// <summary>The admin key. Unset in Development means <see cref="DevelopmentAdminKey"/>.</summary>
    public string? AdminKey { get; set; }

    /// <summary>
    /// How long a tenant key's tenant is remembered in memory (0 looks every request up). A key revoked through this
    /// API stops working at once; one revoked on another replica or in SQL within this time.
    /// </summary>
    public TimeSpan KeyCacheTtl { get; set; } = TimeSpan.FromSeconds(30);
}
