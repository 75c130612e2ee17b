using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata;
using Npgsql;

namespace FineTuneService.Worker.Jobs;

/// <summary>
/// Inserts many job events in one statement, in order. EF's batched SaveChanges sorts inserts by key (random ids), so
/// the identity <see cref="JobEvent.Sequence"/> would not follow the order events happened in; an
/// <c>INSERT … SELECT FROM unnest(…) WITH ORDINALITY ORDER BY</c> keeps that order at one round trip.
/// Table and column names come from the EF model, so they follow its mapping.
/// </summary>
internal static class JobEventBatch
{
    public static async Task InsertAsync(FineTuneDbContext db, IReadOnlyList<JobEvent> events, CancellationToken cancellationToken)
    {
        if (events.Count == 0) return;
        var entity = db.Model.FindEntityType(typeof(JobEvent))!;
        var table = StoreObjectIdentifier.Table(entity.GetTableName()!, entity.GetSchema());

        var columns = new (string Property, Func<JobEvent, object?> Value, string Cast)[]
        {
            (nameof(JobEvent.Id), e => e.Id, ""),
            (nameof(JobEvent.JobId), e => e.JobId, ""),
            (nameof(JobEvent.Level), e => e.Level, ""),
            (nameof(JobEvent.Message), e => e.Message, ""),
            (nameof(JobEvent.Type), e => e.Type, ""),
            (nameof(JobEvent.Data), e => e.Data, "::jsonb"),
            (nameof(JobEvent.CreatedAt), e => e.CreatedAt, ""),
        };

        var names = new List<string>();
        var parameters = new List<NpgsqlParameter>();
        foreach (var (propertyName, value, _) in columns)
        {
            var property = entity.FindProperty(propertyName)!;
            names.Add(Quote(property.GetColumnName(table)!));
            parameters.Add(ArrayParameter($"p{parameters.Count}", property, events.Select(value)));
        }

        var source = string.Join(", ", columns.Select((c, i) => $"c{i}{c.Cast}"));
        var aliases = string.Join(", ", columns.Select((_, i) => $"c{i}"));
        var sql = $"INSERT INTO {QuoteTable(table)} ({string.Join(", ", names)}) " +
                  $"SELECT {source} FROM unnest({string.Join(", ", parameters.Select(p => "@" + p.ParameterName))}) " +
                  $"WITH ORDINALITY AS e({aliases}, n) ORDER BY n";
        await db.Database.ExecuteSqlRawAsync(sql, parameters, cancellationToken);
    }

    /// <summary>One array parameter of the column's provider values (enum names, JSON text, …).</summary>
    private static NpgsqlParameter ArrayParameter(string name, IProperty property, IEnumerable<object?> values)
    {
        var converter = property.GetTypeMapping().Converter;
        var providerType = converter?.ProviderClrType ?? Nullable.GetUnderlyingType(property.ClrType) ?? property.ClrType;
        var provided = values.Select(v => v is not null && converter is not null ? converter.ConvertToProvider(v) : v).ToArray();
        var array = Array.CreateInstance(providerType, provided.Length);
        for (var i = 0; i < provided.Length; i++) array.SetValue(provided[i], i);
        return new NpgsqlParameter(name, array);
    }

    private static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"") + "\"";

    private static string QuoteTable(StoreObjectIdentifier table) =>
        table.Schema is null ? Quote(table.Name) : $"{Quote(table.Schema)}.{Quote(table.Name)}";
}
