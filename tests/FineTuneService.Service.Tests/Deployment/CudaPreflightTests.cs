using FineTuneService.Core.Jobs;
using FineTuneService.Service.Tests.Infrastructure;
using FineTuneService.Worker.Hosting;

namespace FineTuneService.Service.Tests.Deployment;

/// <summary>A worker configured for GPUs it does not have refuses to start, unless CPU fallback is allowed.</summary>
public sealed class CudaPreflightTests
{
    private static Func<CudaProbe> Probe(CudaProbe result, List<int>? calls = null) => () =>
    {
        calls?.Add(1);
        return result;
    };

    [Fact]
    public void A_cpu_only_worker_never_touches_cuda()
    {
        var calls = new List<int>();
        var verdict = CudaPreflight.Decide(["cpu"], allowCpuFallback: false, Probe(new CudaProbe(false, 0), calls));
        Assert.True(verdict.Start);
        Assert.Empty(verdict.Problems);
        Assert.Empty(calls);
    }

    [Fact]
    public void Configured_cuda_without_cuda_refuses_to_start_by_default()
    {
        var verdict = CudaPreflight.Decide(["cpu", "cuda:0"], allowCpuFallback: false, Probe(new CudaProbe(false, 0, "no driver")));
        Assert.False(verdict.Start);
        var problem = Assert.Single(verdict.Problems);
        Assert.Contains("cuda:0", problem);
        Assert.Contains("no driver", problem);
    }

    [Fact]
    public void A_device_index_past_the_visible_devices_refuses_to_start()
    {
        var verdict = CudaPreflight.Decide(["cuda:0", "cuda:1", "cuda:2"], allowCpuFallback: false, Probe(new CudaProbe(true, 2)));
        Assert.False(verdict.Start);
        Assert.Equal("Worker:Devices lists cuda:2 but only 2 CUDA device(s) are visible.", Assert.Single(verdict.Problems));
    }

    [Fact]
    public void Allowed_cpu_fallback_starts_and_still_reports_the_problem()
    {
        var verdict = CudaPreflight.Decide(["cuda:0"], allowCpuFallback: true, Probe(new CudaProbe(false, 0)));
        Assert.True(verdict.Start);
        Assert.Single(verdict.Problems);
    }

    [Fact]
    public void A_fallback_device_is_recorded_and_announced_as_the_cpu_it_trains_on()
    {
        var verdict = CudaPreflight.Decide(["cpu", "cuda:0", "cuda:1"], allowCpuFallback: true, Probe(new CudaProbe(true, 1)));
        Assert.Equal(["cuda:1"], verdict.CpuFallbacks);
        Assert.Equal(["cpu", "cuda", "cpu"], new[] { "cpu", "cuda:0", "cuda:1" }.Select(verdict.DeviceKindOf));

        // The API counts the pool's device kinds from the server names: the fallback is a CPU server, and its name
        // still tells the operator which configured device it stands for.
        var fallback = new WorkerSlot("cuda:1", verdict.DeviceKindOf("cuda:1"));
        Assert.Equal("cpu", fallback.DeviceKind);
        Assert.EndsWith(":cpu:fallback-cuda-1", fallback.ServerName);
        Assert.Equal("cpu", DeviceKinds.OfServer(fallback.ServerName + ":4f2a"));
        Assert.Equal("cuda", DeviceKinds.OfServer(new WorkerSlot("cuda:0", "cuda").ServerName + ":4f2a"));
        Assert.NotEqual(fallback.WorkerId, new WorkerSlot("cuda:2", "cpu").WorkerId);
    }

    [Fact]
    public void Every_configured_device_visible_starts_cleanly()
    {
        var verdict = CudaPreflight.Decide(["cuda:0", "cuda:1"], allowCpuFallback: false, Probe(new CudaProbe(true, 2)));
        Assert.True(verdict.Start);
        Assert.Empty(verdict.Problems);
    }
}

/// <summary>The real worker process on this GPU-less machine.</summary>
[Collection(PostgresCollection.Name)]
public sealed class CudaPreflightProcessTests(PostgresServer server)
{
    [Fact]
    public async Task A_worker_process_configured_for_cuda_0_exits_non_zero_on_a_machine_without_cuda()
    {
        var cache = Directory.CreateTempSubdirectory("fts-worker-process-").FullName;
        try
        {
            await using var worker = WorkerProcess.Start(await server.CreateDatabaseAsync(), cache,
                new Dictionary<string, string?> { ["Worker:Devices:0"] = "cuda:0" });
            var exitCode = await worker.WaitForExitAsync(TimeSpan.FromSeconds(120));
            Assert.True(exitCode != 0, $"exit code 0. Output:\n{worker.Output}");
            Assert.Contains("cuda:0 but CUDA is not available", worker.Output);
            Assert.Contains("Worker:AllowCpuFallback", worker.Output);
        }
        finally
        {
            Directory.Delete(cache, recursive: true);
        }
    }
}
