using FineTuneService.Ml.Training;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Tests.Training;

public class CpuMixedPrecisionTests
{
    [Theory]
    [InlineData(100.0, 150.0, true)]
    [InlineData(100.0, 149.9, false)]
    [InlineData(150.0, 5.0, false)]   // AVX2-only CPUs emulate bf16
    [InlineData(0.0, 10.0, false)]    // no fp32 figure: no decision for bf16
    public void BFloat16_is_used_only_where_it_is_at_least_one_and_a_half_times_faster(double float32, double bfloat16, bool expected)
    {
        Assert.Equal(expected, CpuMixedPrecision.Worthwhile(float32, bfloat16));
        Assert.Equal(expected, new CpuPrecisionProbe(float32, bfloat16, []).UseBFloat16);
    }

    [Fact]
    public void Cpu_flags_of_interest_are_read_from_cpuinfo()
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16 amx_tile\nbugs\t: none\n");
            Assert.Equal(new[] { "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile" }, CpuMixedPrecision.CpuFlags(path));
            File.WriteAllText(path, "processor\t: 0\n");
            Assert.Empty(CpuMixedPrecision.CpuFlags(path));
        }
        finally
        {
            File.Delete(path);
        }
        Assert.Empty(CpuMixedPrecision.CpuFlags("/nonexistent/cpuinfo"));
    }

    [Fact]
    public void A_matmul_measurement_has_the_repeats_asked_for_and_a_best_no_lower_than_its_median()
    {
        var rate = MatmulThroughput.Measure(ScalarType.Float32, size: 64, repeats: 3, TimeSpan.FromMilliseconds(5));

        Assert.Equal(3, rate.Repeats.Count);
        Assert.All(rate.Repeats, r => Assert.True(r.Multiplications >= 1 && r.GflopsPerSecond > 0));
        Assert.True(rate.Best >= rate.Median && rate.Median >= rate.Worst);
        Assert.InRange(rate.Spread, 0, 1);
    }
}
