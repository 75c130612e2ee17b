using FineTuneService.Api.Errors;
using FineTuneService.Core.Domain;

namespace FineTuneService.Api.Endpoints;

internal static class Paging
{
    /// <summary>OpenAI's limit: default 20, 1 to 100.</summary>
    public static int Limit(int? limit, int defaultLimit = 20, int max = 100) => limit switch
    {
        null => defaultLimit,
        < 1 => throw ApiException.InvalidRequest($"limit must be between 1 and {max}.", "limit"),
        _ => Math.Min(limit.Value, max),
    };

    /// <summary>
    /// Rows in (created_at, id) order, newest first unless <paramref name="ascending"/>, starting after
    /// <paramref name="cursor"/> (the last row of the previous page) when there is one.
    /// </summary>
    public static IQueryable<T> InCreationOrder<T>(this IQueryable<T> rows, T? cursor, bool ascending = false) where T : class, ICreatedRow
    {
        if (cursor is not null)
            rows = ascending
                ? rows.Where(r => r.CreatedAt > cursor.CreatedAt || (r.CreatedAt == cursor.CreatedAt && string.Compare(r.Id, cursor.Id) > 0))
                : rows.Where(r => r.CreatedAt < cursor.CreatedAt || (r.CreatedAt == cursor.CreatedAt && string.Compare(r.Id, cursor.Id) < 0));
        return ascending ? rows.OrderBy(r => r.CreatedAt).ThenBy(r => r.Id) : rows.OrderByDescending(r => r.CreatedAt).ThenByDescending(r => r.Id);
    }
}
