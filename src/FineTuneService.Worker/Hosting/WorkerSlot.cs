using FineTuneService.Core.Jobs;

namespace FineTuneService.Worker.Hosting;

/// <summary>
/// The device a Hangfire server trains on, and the identity its jobs carry in <c>FineTuningJob.WorkerId</c>
/// (host, device and process, so a restarted process never mistakes a dead predecessor's lease for its own).
/// <see cref="DeviceKind"/> is the kind it trains on (<c>cpu</c>, <c>cuda</c>), recorded on the jobs it trains: a
/// configured CUDA device the preflight found missing trains on the CPU, and says so.
/// </summary>
public sealed record WorkerSlot(string Device, string DeviceKind)
{
    public string WorkerId { get; } = $"{Environment.MachineName}:{Device}:{Environment.ProcessId}";

    /// <summary>Hangfire server name; Hangfire appends a unique suffix. The API reads the pool's device kinds from it (<see cref="DeviceKinds.OfServer"/>).</summary>
    public string ServerName => DeviceKinds.ServerName(Environment.MachineName, Device, DeviceKind);
}

/// <summary>
/// Scoped holder through which a job learns the slot of the Hangfire server that activated it
/// (<see cref="ScopedJobActivator"/> assigns it when the job's scope begins).
/// </summary>
public sealed class CurrentWorkerSlot
{
    private WorkerSlot? _slot;

    public WorkerSlot Slot =>
        _slot ?? throw new InvalidOperationException("This job was not activated by a device server of the worker host.");

    internal void Assign(WorkerSlot slot)
    {
        if (_slot is not null && _slot != slot) throw new InvalidOperationException("The worker slot is already assigned.");
        _slot = slot;
    }
}
