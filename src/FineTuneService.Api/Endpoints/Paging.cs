using FineTuneService.Api.Errors;

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
}
