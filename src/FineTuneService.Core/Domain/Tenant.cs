namespace FineTuneService.Core.Domain;

public sealed class Tenant
{
    public required string Id { get; init; }
    public required string Name { get; set; }
    public DateTime CreatedAt { get; init; }
    public List<ApiKey> Keys { get; init; } = [];
}

/// <summary>A tenant's API key. Only the SHA-256 of the key is stored; the key itself is shown once.</summary>
public sealed class ApiKey
{
    public Guid Id { get; init; } = Guid.NewGuid();
    public required string TenantId { get; init; }
    /// <summary>Hex SHA-256 of the whole key.</summary>
    public required string KeyHash { get; init; }
    /// <summary>First characters of the key, for humans telling keys apart.</summary>
    public required string Prefix { get; init; }
    public DateTime CreatedAt { get; init; }
    public DateTime? RevokedAt { get; set; }
}
