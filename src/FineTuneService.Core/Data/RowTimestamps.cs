using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace FineTuneService.Core.Data;

/// <summary>
/// Stamps rows from the host's <see cref="TimeProvider"/>: <c>CreatedAt</c> of every added row that did not set it,
/// <c>UpdatedAt</c> of every added or changed row. Rows take their time from one clock that tests can replace, not
/// from a wall-clock default in each entity.
/// </summary>
internal sealed class RowTimestamps(TimeProvider clock) : SaveChangesInterceptor
{
    private const string CreatedAt = "CreatedAt";
    private const string UpdatedAt = "UpdatedAt";

    public override InterceptionResult<int> SavingChanges(DbContextEventData eventData, InterceptionResult<int> result)
    {
        Stamp(eventData.Context);
        return result;
    }

    public override ValueTask<InterceptionResult<int>> SavingChangesAsync(DbContextEventData eventData, InterceptionResult<int> result,
        CancellationToken cancellationToken = default)
    {
        Stamp(eventData.Context);
        return ValueTask.FromResult(result);
    }

    private void Stamp(DbContext? context)
    {
        if (context is null) return;
        var now = clock.GetUtcNow().UtcDateTime;
        foreach (var entry in context.ChangeTracker.Entries())
        {
            if (entry.State == EntityState.Added && IsTimestamp(entry, CreatedAt) && (DateTime)entry.Property(CreatedAt).CurrentValue! == default)
                entry.Property(CreatedAt).CurrentValue = now;
            if (entry.State is EntityState.Added or EntityState.Modified && IsTimestamp(entry, UpdatedAt))
                entry.Property(UpdatedAt).CurrentValue = now;
        }
    }

    private static bool IsTimestamp(Microsoft.EntityFrameworkCore.ChangeTracking.EntityEntry entry, string name) =>
        entry.Metadata.FindProperty(name)?.ClrType == typeof(DateTime);
}
