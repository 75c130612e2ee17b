using System.ComponentModel.DataAnnotations;

namespace FineTuneService.Worker;

/// <summary>Worker host settings, bound from the <c>Worker</c> configuration section.</summary>
public sealed record WorkerOptions
{
    public const string SectionName = "Worker";

    /// <summary>
    /// Torch devices this process trains on, one Hangfire server (one job at a time) per entry:
    /// <c>["cpu"]</c> (also what an empty list means), or <c>["cuda:0", "cuda:1"]</c>. A CUDA entry that does not
    /// exist stops the worker at start, unless <see cref="AllowCpuFallback"/>.
    /// </summary>
    /// <remarks>Empty by default rather than ["cpu"]: configuration binding appends to a default array.</remarks>
    public string[] Devices { get; set; } = [];

    /// <summary>Let configured CUDA devices that are missing train on the CPU instead of refusing to start.</summary>
    public bool AllowCpuFallback { get; init; }

    /// <summary>
    /// How long a stopping worker waits for its running jobs to reach a step boundary, save a checkpoint and hand
    /// themselves back; both Hangfire's and the host's shutdown timeout. A container's stop grace period must be longer.
    /// </summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>How often a running job reports that its worker is alive (and flushes its buffered events).</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>A running job whose heartbeat is older than this is considered orphaned by a dead worker.</summary>
    public TimeSpan StaleTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How often this process looks for orphaned jobs.</summary>
    public TimeSpan RecoveryInterval { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Worker starts allowed per job; an orphaned job past this fails with <c>worker_lost</c>.</summary>
    [Range(1, 100)]
    public int MaxAttempts { get; init; } = 3;

    /// <summary>Save a resumable checkpoint every N optimizer steps.</summary>
    [Range(1, int.MaxValue)]
    public int CheckpointEverySteps { get; init; } = 50;

    /// <summary>Write a metrics event (step, loss, tokens/s, ETA) every N optimizer steps.</summary>
    [Range(1, int.MaxValue)]
    public int MetricsEverySteps { get; init; } = 5;

    /// <summary>Where base models are unpacked, one folder per bundle SHA-256; also holds per-job scratch space.</summary>
    [Required]
    public string ModelCacheDirectory { get; init; } = Path.Combine(Path.GetTempPath(), "fts-worker");

    /// <summary>Peak learning rate before the job's <c>learning_rate_multiplier</c> is applied.</summary>
    [Range(1e-7, 1.0)]
    public double BaseLearningRate { get; init; } = 2e-3;

    /// <summary>Rows of each shipped safety data set handed to the safety strategies that need one.</summary>
    [Range(1, 10_000)]
    public int SafetyExamples { get; init; } = 64;

    /// <summary>Hangfire workers of the screening queue (training-data harm screening, CPU only).</summary>
    [Range(1, 16)]
    public int ScreeningWorkers { get; init; } = 1;

    /// <summary>
    /// Classifier probability at or above which screening flags a training row. Stricter than the classifier's own
    /// threshold because the classifier has no notion of a benign request: at its threshold it flags 62 % of Dolly's
    /// (safety-topic) and 31 % of Self-Instruct's reference answers, at 0.9 31 % and 12 %, while 90 % of BeaverTails
    /// unsafe answers and every AdvBench target still score 0.9 or more (docs/benchmarks/classifier/validation.md).
    /// </summary>
    [Range(0.0, 1.0)]
    public double ScreeningMinRowScore { get; init; } = 0.9;

    /// <summary>Training rows are cut to this many tokens.</summary>
    [Range(8, 1 << 20)]
    public int MaxSequenceLength { get; init; } = 512;

    /// <summary>
    /// bf16 compute on CPU devices: <c>Off</c> (fp32, the default) or <c>Auto</c> (bf16 with fp32 master weights for
    /// training, bf16 for evaluation, where this CPU's measured bf16 matmul rate is at least 1.5 times its fp32 rate).
    /// </summary>
    public Training.CpuMixedPrecisionMode CpuMixedPrecision { get; init; } = Training.CpuMixedPrecisionMode.Off;
}
