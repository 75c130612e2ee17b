using System.Collections.Concurrent;
using FineTuneService.Core.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace FineTuneService.Api.Auth;

/// <summary>
/// Tenant key → tenant, remembered for <see cref="AuthOptions.KeyCacheTtl"/> so that a tenant polling its jobs costs
/// no database round trip per request. Entries are keyed by the key's SHA-256 (the key itself is never held), and
/// only keys the database accepted are kept. Revoking a key through this API forgets it at once; a revocation made
/// elsewhere (another API replica, SQL) takes effect within the TTL.
/// </summary>
internal sealed class TenantKeyCache(IDbContextFactory<FineTuneDbContext> contexts, IOptions<AuthOptions> options, TimeProvider clock)
{
    private readonly ConcurrentDictionary<string, (string TenantId, DateTimeOffset Until)> _tenants = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    /// <summary>Counts <see cref="Forget"/> calls, so a lookup that raced a revocation does not store its stale answer.</summary>
    private long _revocations;

    private static readonly Func<FineTuneDbContext, string, CancellationToken, Task<string?>> ActiveKeyTenant =
        EF.CompileAsyncQuery((FineTuneDbContext db, string keyHash, CancellationToken _) => db.ApiKeys
            .Where(k => k.KeyHash == keyHash && k.RevokedAt == null)
            .Select(k => k.TenantId)
            .SingleOrDefault());

    /// <summary>The tenant of the active key with this hash, or null when there is none.</summary>
    public async ValueTask<string?> TenantOfAsync(string keyHash, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        if (_tenants.TryGetValue(keyHash, out var entry) && now < entry.Until) return entry.TenantId;

        var revocations = Interlocked.Read(ref _revocations);
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var tenantId = await ActiveKeyTenant(db, keyHash, cancellationToken);
        var ttl = options.Value.KeyCacheTtl;
        lock (_gate)
        {
            if (tenantId is null || ttl <= TimeSpan.Zero || _revocations != revocations) _tenants.TryRemove(keyHash, out _);
            else _tenants[keyHash] = (tenantId, now + ttl);
        }
        return tenantId;
    }

    /// <summary>Call after revoking a key: the next request with it goes to the database.</summary>
    public void Forget(string keyHash)
    {
        lock (_gate)
        {
            _revocations++;
            _tenants.TryRemove(keyHash, out _);
        }
    }
}
