using System.Text.Json.Nodes;
using FineTuneService.Core.Domain;

namespace FineTuneService.Api.Jobs;

/// <summary>Events the API writes on a job's timeline (the worker writes training progress).</summary>
internal static class JobEventLog
{
    public static JobEvent Message(string jobId, string message, EventLevel level = EventLevel.Info, JsonObject? data = null) => new()
    {
        Id = Ids.Event(),
        JobId = jobId,
        Level = level,
        Message = message,
        Data = data,
    };
}
