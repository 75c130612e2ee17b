namespace FineTuneService.Core.Domain;

/// <summary>
/// A live inference server of a worker host, registered at its start and kept fresh by heartbeats; the API forwards
/// chat completions to endpoints whose heartbeat is recent and skips the others.
/// </summary>
public sealed class InferenceEndpoint
{
    /// <summary>"{machine}:{process}:{random}": unique per server start.</summary>
    public required string Id { get; init; }
    /// <summary>Base address the API forwards to, e.g. <c>http://10.0.0.7:8090</c>.</summary>
    public required string Url { get; set; }
    /// <summary>Bearer secret the server requires: only those who can read this row (the API hosts) can call it.</summary>
    public required string AccessToken { get; init; }
    /// <summary>Torch devices it serves on, comma-separated.</summary>
    public required string Devices { get; init; }
    /// <summary>Sequences waiting or decoding at the last heartbeat; the API prefers the least loaded endpoint.</summary>
    public int Load { get; set; }
    /// <summary>Ids of the models loaded at the last heartbeat; the API prefers an endpoint that has the model.</summary>
    public List<string> LoadedModels { get; set; } = [];
    public DateTime StartedAt { get; init; }
    public DateTime HeartbeatAt { get; set; }
}
