using FineTuneService.Core.Jobs;
using Hangfire;
using Hangfire.Common;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FineTuneService.Worker.Hosting;

/// <summary>
/// Starts one Hangfire server per configured device, each with exactly one worker on the <see cref="Queues.Gpu"/>
/// queue, so a device never trains two jobs at once. More devices or machines simply mean more servers on the same
/// storage; Hangfire hands each queued job to exactly one of them.
/// </summary>
internal sealed class DeviceServers(
    IOptions<WorkerOptions> options,
    JobStorage storage,
    IServiceScopeFactory scopes,
    IServiceProvider services,
    CudaPreflight preflight,
    ILogger<DeviceServers> logger) : IHostedService, IHealthCheck
{
    private List<BackgroundJobServer> _servers = [];

    /// <summary>Ready while every configured device has its server.</summary>
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(_servers.Count == options.Value.Devices.Length
            ? HealthCheckResult.Healthy($"serving {string.Join(", ", options.Value.Devices)}")
            : HealthCheckResult.Unhealthy("device servers not running"));

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var servers = new List<BackgroundJobServer>();
        foreach (var device in options.Value.Devices)
        {
            var slot = new WorkerSlot(device, preflight.Verdict.DeviceKindOf(device));
            var serverOptions = new BackgroundJobServerOptions
            {
                ServerName = slot.ServerName,
                WorkerCount = 1,
                Queues = [Queues.Gpu],
                Activator = new ScopedJobActivator(scopes, slot),
                FilterProvider = services.GetService<IJobFilterProvider>() ?? JobFilterProviders.Providers,
                // The job's token fires at once on stop; the job then checkpoints at its next step boundary and hands
                // itself back, for up to Worker:ShutdownTimeout (the host waits as long).
                ShutdownTimeout = options.Value.ShutdownTimeout,
            };
            servers.Add(new BackgroundJobServer(serverOptions, storage));
            logger.LogInformation("Hangfire server {Server} started on device {Device} ({Kind}; queue {Queue}, 1 worker)",
                slot.ServerName, device, slot.DeviceKind, Queues.Gpu);
        }
        _servers = servers;
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        // Stopping twice (a host stopped, then disposed) must not stop the same servers twice.
        var servers = Interlocked.Exchange(ref _servers, []);
        foreach (var server in servers) server.SendStop();
        foreach (var server in servers)
        {
            await server.WaitForShutdownAsync(cancellationToken);
            server.Dispose();
        }
    }
}
