namespace FineTuneService.Api.Auth;

/// <summary>Authentication settings: section "Auth"; the admin key may also come from the FTS_ADMIN_KEY variable.</summary>
public sealed record AuthOptions
{
    public const string Section = "Auth";

    /// <summary>Documented in the README; accepted only in the Development environment.</summary>
    public const string DevelopmentAdminKey = "sk-fts-admin-dev";

    /// <summary>The admin key. Unset in Development means <see cref="DevelopmentAdminKey"/>.</summary>
    public string? AdminKey { get; set; }
}
