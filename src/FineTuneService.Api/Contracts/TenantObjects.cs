namespace FineTuneService.Api.Contracts;

/// <summary>Body of <c>POST /v1/admin/tenants</c>.</summary>
public sealed record CreateTenantRequest(string Name);

/// <summary>A tenant; <see cref="ApiKey"/> is present only in the creation answer and never again.</summary>
public sealed record TenantObject(string Id, string Name, long CreatedAt, string? ApiKey)
{
    public string Object => "tenant";
}
