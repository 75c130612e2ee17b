using Hangfire;

namespace FineTuneService.Core.Jobs;

/// <summary>
/// Device kinds: a torch device name without its index (<c>cpu</c>, <c>cuda</c>). A job records the kind it trained
/// on, and the estimate reads its throughput per base model and kind.
/// </summary>
public static class DeviceKinds
{
    public const string Cpu = "cpu";

    /// <summary>The kind of device <paramref name="device"/> (<c>"cuda:1"</c> → <c>"cuda"</c>).</summary>
    public static string Of(string device) => device.Split(':')[0].Trim().ToLowerInvariant();

    /// <summary>
    /// The Hangfire server name of the device server for <paramref name="device"/>, training on a <paramref name="kind"/>
    /// device: <c>host:cuda:0</c>, or <c>host:cpu:fallback-cuda-0</c> for a CUDA device that trains on the CPU.
    /// </summary>
    public static string ServerName(string machine, string device, string kind) =>
        kind == Of(device) ? $"{machine}:{device}" : $"{machine}:{kind}:fallback-{device.Replace(':', '-')}";

    /// <summary>
    /// The device kind of a gpu-queue server from its Hangfire id: <see cref="ServerName"/> followed by what Hangfire
    /// appends (<c>host:cuda:0:…</c>); null for an id without that shape.
    /// </summary>
    public static string? OfServer(string serverId)
    {
        var parts = serverId.Split(':');
        return parts.Length >= 3 && parts[1].Length > 0 ? parts[1].ToLowerInvariant() : null;
    }
}

/// <summary>The training pool as Hangfire sees it: the device servers registered on the <see cref="Queues.Gpu"/> queue.</summary>
public sealed class WorkerPool(JobStorage storage)
{
    /// <summary>
    /// The device kinds of the live gpu-queue servers (Hangfire lists a server until its heartbeat times out), each
    /// once; empty when no worker is up.
    /// </summary>
    public IReadOnlyCollection<string> LiveDeviceKinds() =>
        storage.GetMonitoringApi().Servers()
            .Where(s => s.Queues.Contains(Queues.Gpu))
            .Select(s => DeviceKinds.OfServer(s.Name))
            .OfType<string>()
            .ToHashSet();
}
