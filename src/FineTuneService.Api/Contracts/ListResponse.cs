namespace FineTuneService.Api.Contracts;

/// <summary>OpenAI's list envelope: <c>{object: "list", data, has_more, first_id, last_id}</c>.</summary>
public sealed record ListResponse<T>(IReadOnlyList<T> Data, bool HasMore, string? FirstId, string? LastId)
{
    public string Object => "list";
}

internal static class ListResponse
{
    /// <summary>Builds a page from up to <c>limit + 1</c> rows: the extra row only says whether there is more.</summary>
    public static ListResponse<T> Page<T>(IReadOnlyList<T> rows, int limit, Func<T, string> id)
    {
        var page = rows.Take(limit).ToList();
        return new ListResponse<T>(page, rows.Count > limit, page.Count > 0 ? id(page[0]) : null, page.Count > 0 ? id(page[^1]) : null);
    }
}
