using FineTuneService.Core.Jobs;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TorchSharp;

namespace FineTuneService.Worker.Hosting;

/// <summary>What the CUDA runtime said when the worker initialised it.</summary>
public sealed record CudaProbe(bool Available, int DeviceCount, string? Error = null);

/// <summary>
/// The preflight's verdict: start (possibly with warnings about CPU fallback) or refuse to start.
/// <see cref="CpuFallbacks"/> are the configured CUDA devices that are missing, which train on the CPU when it starts.
/// </summary>
public sealed record PreflightVerdict(bool Start, IReadOnlyList<string> Problems, IReadOnlyList<string> CpuFallbacks)
{
    /// <summary>The kind of device <paramref name="device"/> trains on: <c>cpu</c> for a fallback, else its configured kind.</summary>
    public string DeviceKindOf(string device) =>
        CpuFallbacks.Contains(device, StringComparer.OrdinalIgnoreCase) ? DeviceKinds.Cpu : DeviceKinds.Of(device);
}

/// <summary>
/// Fail fast on GPUs. When <c>Worker:Devices</c> lists any <c>cuda:N</c>, the worker initialises CUDA before any other
/// torch use (the first hosted service of the worker) and checks that every listed device exists. Without them it
/// refuses to start (the process exits non-zero), unless <c>Worker:AllowCpuFallback=true</c>, in which case those
/// devices train on the CPU and the log says so.
/// </summary>
public sealed class CudaPreflight(IOptions<WorkerOptions> options, ILogger<CudaPreflight> logger) : IHostedService
{
    /// <summary>The decision, apart from torch: <paramref name="probe"/> runs only when a CUDA device is configured.</summary>
    public static PreflightVerdict Decide(IReadOnlyList<string> devices, bool allowCpuFallback, Func<CudaProbe> probe)
    {
        var cuda = devices.Where(d => d.StartsWith("cuda:", StringComparison.OrdinalIgnoreCase)).ToList();
        if (cuda.Count == 0) return new PreflightVerdict(true, [], []);

        var found = probe();
        var problems = new List<string>();
        var missing = found.Available ? cuda.Where(d => int.Parse(d.AsSpan(5)) >= found.DeviceCount).ToList() : cuda;
        if (!found.Available)
            problems.Add($"Worker:Devices lists {string.Join(", ", cuda)} but CUDA is not available" +
                         (found.Error is null ? "" : $" ({found.Error})") + ".");
        else
            problems.AddRange(missing.Select(d => $"Worker:Devices lists {d} but only {found.DeviceCount} CUDA device(s) are visible."));
        return new PreflightVerdict(problems.Count == 0 || allowCpuFallback, problems, missing);
    }

    /// <summary>The verdict of this worker's start; read by the device servers, which start after the preflight.</summary>
    public PreflightVerdict Verdict => _verdict ?? throw new InvalidOperationException("The CUDA preflight has not run yet.");

    private PreflightVerdict? _verdict;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var verdict = _verdict = Decide(options.Value.Devices, options.Value.AllowCpuFallback, InitialiseCuda);
        foreach (var problem in verdict.Problems)
        {
            if (verdict.Start) logger.LogWarning("{Problem} Worker:AllowCpuFallback is set: those devices train on the CPU.", problem);
            else logger.LogCritical("{Problem}", problem);
        }
        if (!verdict.Start)
            throw new InvalidOperationException(string.Join(" ", verdict.Problems) +
                " Fix the GPU setup (driver, container runtime, visible devices), list only devices that exist, or set " +
                "Worker:AllowCpuFallback=true to train on the CPU instead.");
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Loads the CUDA backend first, so no CPU-only initialisation (screening, the classifier) can pre-empt it.</summary>
    private static CudaProbe InitialiseCuda()
    {
        try
        {
            if (!torch.TryInitializeDeviceType(DeviceType.CUDA)) return new CudaProbe(false, 0, "the CUDA backend of libtorch did not load");
            return torch.cuda.is_available() ? new CudaProbe(true, torch.cuda.device_count()) : new CudaProbe(false, 0);
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or InvalidOperationException or NotSupportedException)
        {
            return new CudaProbe(false, 0, e.Message);
        }
    }
}
