using FineTuneService.Ml.Runtime;

namespace FineTuneService.Ml.Tests;

public class CpuThreadWaitsTests
{
    [Fact]
    public void Libtorch_threads_wait_passively_unless_the_operator_chose_a_policy()
    {
        // The managed environment is the process's environment as it started: the operator's choice, if any.
        var chosen = Environment.GetEnvironmentVariable(CpuThreadWaits.Variable);

        Assert.Equal(chosen ?? "PASSIVE", CpuThreadWaits.NativePolicy());
    }
}
