namespace FineTuneService.Api.Contracts;

/// <summary>Body of <c>POST /v1/admin/tenants</c>.</summary>
public sealed record CreateTenantRequest(string Name);

/// <summary>A tenant; <see cref="ApiKey"/> is present only in the creation answer and never again.</summary>
public sealed record TenantObject(string Id, string Name, long CreatedAt, string? ApiKey)
{
    public string Object => "tenant";
}

/// <summary>
/// A tenant API key. <see cref="ApiKey"/> (the key itself) is present only in the answer that created it;
/// <see cref="RedactedValue"/> is its first characters, to tell keys apart.
/// </summary>
public sealed record ApiKeyObject(string Id, string TenantId, string RedactedValue, long CreatedAt, long? RevokedAt, string? ApiKey)
{
    public string Object => "api_key";
}
