using FineTuneService.Ml.Training;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TorchSharp;
using static TorchSharp.torch;

namespace FineTuneService.Worker.Training;

/// <summary>CPU mixed precision: <see cref="WorkerOptions.CpuMixedPrecision"/>.</summary>
public enum CpuMixedPrecisionMode
{
    /// <summary>fp32 training and evaluation on the CPU.</summary>
    Off,

    /// <summary>
    /// Measure this CPU's bf16 and fp32 matmul rates once, at the first job; where bf16 is at least
    /// <see cref="CpuMixedPrecision.MinimumSpeedup"/> times faster, train with bf16 compute and fp32 master weights
    /// and evaluate in bf16, otherwise stay in fp32.
    /// </summary>
    Auto,
}

/// <summary>The numeric precision this worker trains and evaluates in, per device.</summary>
public sealed class WorkerPrecision
{
    private readonly IOptions<WorkerOptions> _options;
    private readonly Lazy<CpuPrecisionProbe> _probe;

    public WorkerPrecision(IOptions<WorkerOptions> options, ILogger<WorkerPrecision> logger)
    {
        _options = options;
        _probe = new Lazy<CpuPrecisionProbe>(() =>
        {
            var probe = CpuMixedPrecision.Probe();
            logger.LogInformation("CPU mixed precision {Decision}: {Probe}", probe.UseBFloat16 ? "on" : "off", probe);
            return probe;
        });
    }

    /// <summary>CUDA trains in bf16 with fp32 masters (the trainer's default); the CPU in fp32 unless bf16 pays here.</summary>
    public TrainingPrecision Training(Device device) =>
        device.type != DeviceType.CPU ? TrainingPrecision.Auto
        : BFloat16OnCpu ? TrainingPrecision.BFloat16 : TrainingPrecision.Float32;

    /// <summary>The dtype a model is loaded in for evaluation on <paramref name="device"/>.</summary>
    public ScalarType Evaluation(Device device) =>
        device.type == DeviceType.CPU && BFloat16OnCpu ? ScalarType.BFloat16 : ScalarType.Float32;

    private bool BFloat16OnCpu => _options.Value.CpuMixedPrecision == CpuMixedPrecisionMode.Auto && _probe.Value.UseBFloat16;
}
