using System.Text.Json.Nodes;
using FineTuneService.Api.Errors;
using FineTuneService.Core.Domain;
using Microsoft.EntityFrameworkCore;

namespace FineTuneService.Api.Jobs;

/// <summary>OpenAI's job-list metadata filter: <c>metadata[key]=value</c> pairs (all must match) or <c>metadata=null</c>.</summary>
internal static class MetadataFilter
{
    private const string Prefix = "metadata[";

    public static IQueryable<FineTuningJob> Apply(IQueryable<FineTuningJob> jobs, IQueryCollection query)
    {
        if (query.TryGetValue("metadata", out var whole))
        {
            if (whole.ToString() != "null")
                throw ApiException.InvalidRequest("metadata filters are metadata[key]=value pairs, or metadata=null.", "metadata");
            return jobs.Where(j => j.Metadata == null);
        }

        var wanted = new JsonObject();
        foreach (var (name, values) in query)
        {
            if (!name.StartsWith(Prefix, StringComparison.Ordinal)) continue;
            if (!name.EndsWith(']') || name.Length == Prefix.Length + 1)
                throw ApiException.InvalidRequest($"Malformed metadata filter '{name}': use metadata[key]=value.", "metadata");
            if (values.Count != 1)
                throw ApiException.InvalidRequest($"Give {name} once.", "metadata");
            wanted[name[Prefix.Length..^1]] = values.ToString();
        }
        // jsonb containment (@>) keeps the jobs whose metadata holds every wanted pair.
        return wanted.Count == 0 ? jobs : jobs.Where(j => j.Metadata != null && EF.Functions.JsonContains(j.Metadata, wanted));
    }
}
