using System.Text.Json.Nodes;
using FineTuneService.Core.Domain;

namespace FineTuneService.Core.Jobs;

/// <summary>Events written on a job's timeline outside a worker lease (API requests, file validation and screening, admin review).</summary>
public static class JobEventLog
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
