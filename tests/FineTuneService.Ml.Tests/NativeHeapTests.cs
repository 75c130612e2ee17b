using FineTuneService.Ml.Runtime;

namespace FineTuneService.Ml.Tests;

[Collection(nameof(NativeHeapTests))] // changes a process-wide environment variable
public class NativeHeapTests
{
    [Fact]
    public void An_operator_malloc_setting_is_left_alone()
    {
        var before = Environment.GetEnvironmentVariable("MALLOC_ARENA_MAX");
        Environment.SetEnvironmentVariable("MALLOC_ARENA_MAX", "2");
        try
        {
            Assert.False(NativeHeap.ReuseFreedMemory());
            Assert.False(NativeHeap.Applied);
        }
        finally
        {
            Environment.SetEnvironmentVariable("MALLOC_ARENA_MAX", before);
        }
    }

    [Fact]
    public void Glibc_accepts_the_tuning()
    {
        // The suite runs on Linux with glibc and no MALLOC_* variable set (deploy/dev/test.sh, .ci/run).
        Assert.True(NativeHeap.ReuseFreedMemory());
        Assert.True(NativeHeap.Applied);
    }
}
