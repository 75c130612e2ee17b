using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Training;

/// <summary>One timed repeat: square matmuls run back to back for at least the repeat's duration.</summary>
/// <param name="GflopsPerSecond">Wall-clock rate.</param>
/// <param name="GflopsPerCpuSecond">Rate per second of process CPU time (user + system, all threads).</param>
public sealed record MatmulRepeat(double GflopsPerSecond, double GflopsPerCpuSecond, int Multiplications, double Seconds);

/// <summary>The repeats of one dtype and size; the best repeat is the practical peak, the spread says how noisy it was.</summary>
public sealed record MatmulRate(string DType, int Size, IReadOnlyList<MatmulRepeat> Repeats)
{
    public double Best => Repeats.Max(r => r.GflopsPerSecond);
    public double Median => Quantile(Repeats.Select(r => r.GflopsPerSecond), 0.5);
    public double Worst => Repeats.Min(r => r.GflopsPerSecond);
    public double BestPerCpuSecond => Repeats.Max(r => r.GflopsPerCpuSecond);

    /// <summary>(best − worst) / best: 0 on a quiet machine, large when neighbours took the cores during some repeats.</summary>
    public double Spread => Best > 0 ? (Best - Worst) / Best : 0;

    private static double Quantile(IEnumerable<double> values, double q)
    {
        var sorted = values.Order().ToArray();
        var position = q * (sorted.Length - 1);
        var low = (int)Math.Floor(position);
        var high = (int)Math.Ceiling(position);
        return sorted[low] + (sorted[high] - sorted[low]) * (position - low);
    }
}

/// <summary>
/// Measures this CPU's (or device's) matmul rate in this process, now: the best of several repeats, each running
/// square <c>mm</c> for at least a minimum duration so that one short stall cannot make or break the figure.
/// </summary>
public static class MatmulThroughput
{
    public static MatmulRate Measure(ScalarType dtype, int size, int repeats, TimeSpan minimumPerRepeat, Device? device = null)
    {
        if (repeats < 1) throw new ArgumentOutOfRangeException(nameof(repeats), "At least one repeat.");
        using var scope = NewDisposeScope();
        var a = randn(size, size, dtype: dtype, device: device);
        var b = randn(size, size, dtype: dtype, device: device);
        mm(a, b).Dispose(); // warm-up: thread pool start, packing buffers
        var flops = 2.0 * size * size * size;
        var results = new List<MatmulRepeat>(repeats);
        for (var r = 0; r < repeats; r++)
        {
            var count = 0;
            var cpuStart = CpuSeconds();
            var clock = Stopwatch.StartNew();
            do
            {
                mm(a, b).Dispose();
                count++;
            } while (clock.Elapsed < minimumPerRepeat);
            if (device?.type == DeviceType.CUDA) cuda.synchronize();
            var seconds = clock.Elapsed.TotalSeconds;
            var cpu = Math.Max(CpuSeconds() - cpuStart, 1e-9);
            results.Add(new MatmulRepeat(flops * count / seconds / 1e9, flops * count / cpu / 1e9, count, seconds));
        }
        return new MatmulRate(dtype.ToString(), size, results);
    }

    private static double CpuSeconds()
    {
        using var process = Process.GetCurrentProcess();
        return process.TotalProcessorTime.TotalSeconds;
    }
}
