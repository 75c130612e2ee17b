using FineTuneService.Core.Domain;
using FineTuneService.Service.Tests.Infrastructure;
using Hangfire;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace FineTuneService.Service.Tests.Worker;

[Collection(PostgresCollection.Name)]
public sealed class DeviceServersTests(PostgresServer server)
{
    private static readonly Dictionary<string, string?> CpuFallback = new() { ["Worker:AllowCpuFallback"] = "true" };

    [Fact]
    public async Task Each_configured_device_gets_its_own_single_worker_server_on_the_gpu_queue()
    {
        await using var worker = await WorkerHost.StartAsync(server, devices: ["cpu", "cuda:0"], settings: CpuFallback);

        // Hangfire servers announce themselves in the background: wait until all three have (a deadline, not a timing check).
        var monitor = worker.Services.GetRequiredService<JobStorage>().GetMonitoringApi();
        var all = await Eventually.UntilAsync(() => Task.FromResult(monitor.Servers()), s => s.Count >= 3, TimeSpan.FromSeconds(30));
        var servers = all.Where(s => s.Queues.Contains("gpu")).ToList();

        // Besides the device servers, one server screens training files; it never takes training jobs.
        var screening = Assert.Single(all, s => !s.Queues.Contains("gpu"));
        Assert.Equal(["screening"], screening.Queues);
        Assert.Equal(2, servers.Count);
        Assert.All(servers, s =>
        {
            Assert.Equal(1, s.WorkersCount);
            Assert.Equal(["gpu"], s.Queues);
        });
        var host = Environment.MachineName.ToLowerInvariant();
        Assert.Contains(servers, s => s.Name.StartsWith($"{host}:cpu:", StringComparison.Ordinal));
        // A cuda:0 that this machine lacks trains on the CPU, and its server says so (the API counts it as a CPU).
        var cuda = TorchSharp.torch.cuda.is_available() ? "cuda:0" : "cpu:fallback-cuda-0";
        Assert.Contains(servers, s => s.Name.StartsWith($"{host}:{cuda}:", StringComparison.Ordinal));
    }

    [Fact]
    public async Task With_cpu_fallback_allowed_a_job_on_a_cuda_server_trains_on_the_cpu_when_there_is_no_gpu()
    {
        // Only a cuda:0 server exists, so it must take the job; this machine has no GPU.
        Assert.False(TorchSharp.torch.cuda.is_available(), "this test needs a machine without CUDA");
        var logs = new CollectingLoggerProvider();
        await using var worker = await WorkerHost.StartAsync(server, devices: ["cuda:0"], settings: CpuFallback, logs: logs);
        var file = await worker.UploadFileAsync(TinyBaseModel.Jsonl(12));
        var job = await worker.AddJobAsync(file, epochs: 1);

        worker.Enqueue(job.Id);
        var done = await worker.WaitForTerminalAsync(job.Id);

        Assert.Equal(JobStatus.Succeeded, done.Status);
        Assert.Contains(await worker.EventsAsync(job.Id), e => e.Message == "Fine-tuning job started on cuda:0");
        // It trained, and the device it trained on was the CPU: the fallback said so when the engine chose the device.
        Assert.True(done.TrainedTokens > 0);
        Assert.Equal("cpu", done.DeviceKind);
        Assert.Contains(logs.Entries, e => e.Category.EndsWith(".TrainingEngine", StringComparison.Ordinal) && e.Level == LogLevel.Warning
                                          && e.Message == "Device cuda:0 is configured but CUDA is not available; training on the CPU");
    }
}
