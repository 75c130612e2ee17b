using static TorchSharp.torch;

namespace FineTuneService.Ml.Training;

/// <summary>The measured fp32 and bf16 matmul rates of this CPU and whether bf16 compute is worth it here.</summary>
public sealed record CpuPrecisionProbe(double Float32Gflops, double BFloat16Gflops, IReadOnlyList<string> CpuFlags)
{
    public double Speedup => Float32Gflops > 0 ? BFloat16Gflops / Float32Gflops : 0;

    /// <summary>Mixed precision (bf16 compute, fp32 master weights) pays on this CPU.</summary>
    public bool UseBFloat16 => CpuMixedPrecision.Worthwhile(Float32Gflops, BFloat16Gflops);

    public override string ToString() =>
        $"bf16 matmul {BFloat16Gflops:F1} GFLOP/s vs fp32 {Float32Gflops:F1} GFLOP/s ({Speedup:F2}x; " +
        $"flags: {(CpuFlags.Count == 0 ? "none of interest" : string.Join(' ', CpuFlags))})";
}

/// <summary>
/// Whether bf16 compute pays on this CPU, decided from a measurement on the hardware at hand, never from its name:
/// CPUs with native bf16 (AVX512-BF16, AMX) can nearly double the matmul rate, while on AVX2-only CPUs libtorch
/// emulates bf16 and runs far slower than fp32.
/// </summary>
public static class CpuMixedPrecision
{
    /// <summary>bf16 must beat fp32 by this factor: below it, rounding costs accuracy for too little speed.</summary>
    public const double MinimumSpeedup = 1.5;

    /// <summary>The CPU flags that bear on fp32/bf16 matmul speed.</summary>
    public static readonly IReadOnlyList<string> FlagsOfInterest =
        ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16"];

    public static bool Worthwhile(double float32Gflops, double bfloat16Gflops) =>
        float32Gflops > 0 && bfloat16Gflops >= MinimumSpeedup * float32Gflops;

    /// <summary>A short probe (about 1.5 s): best of three 0.25 s repeats of 512² matmuls in each dtype.</summary>
    public static CpuPrecisionProbe Probe(int size = 512, int repeats = 3, TimeSpan? perRepeat = null)
    {
        var duration = perRepeat ?? TimeSpan.FromMilliseconds(250);
        var float32 = MatmulThroughput.Measure(ScalarType.Float32, size, repeats, duration);
        var bfloat16 = MatmulThroughput.Measure(ScalarType.BFloat16, size, repeats, duration);
        return new CpuPrecisionProbe(float32.Best, bfloat16.Best, CpuFlags());
    }

    /// <summary>The <see cref="FlagsOfInterest"/> that <c>/proc/cpuinfo</c> lists (empty where there is none).</summary>
    public static IReadOnlyList<string> CpuFlags(string cpuinfoPath = "/proc/cpuinfo")
    {
        if (!File.Exists(cpuinfoPath)) return [];
        var flagsLine = File.ReadLines(cpuinfoPath).FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal));
        if (flagsLine is null) return [];
        var flags = flagsLine.Split(':', 2)[^1].Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal);
        return [.. FlagsOfInterest.Where(flags.Contains)];
    }
}
