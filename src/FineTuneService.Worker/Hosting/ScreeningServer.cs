using FineTuneService.Core.Jobs;
using Hangfire;
using Hangfire.Common;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FineTuneService.Worker.Hosting;

/// <summary>
/// A small Hangfire server of the worker host for the <see cref="Queues.Screening"/> queue: training-data screening
/// needs the harm classifier (libtorch) but only a CPU and milliseconds per row, so it must not wait behind the
/// device servers' one-at-a-time training jobs.
/// </summary>
internal sealed class ScreeningServer(
    IOptions<WorkerOptions> options,
    JobStorage storage,
    IServiceScopeFactory scopes,
    IServiceProvider services,
    ILogger<ScreeningServer> logger) : IHostedService
{
    private BackgroundJobServer? _server;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _server = new BackgroundJobServer(new BackgroundJobServerOptions
        {
            ServerName = $"{Environment.MachineName}:screening",
            WorkerCount = options.Value.ScreeningWorkers,
            Queues = [Queues.Screening],
            Activator = new ScopedJobActivator(scopes),
            FilterProvider = services.GetService<IJobFilterProvider>() ?? JobFilterProviders.Providers,
        }, storage);
        logger.LogInformation("Hangfire server for queue {Queue} started ({Workers} workers)", Queues.Screening, options.Value.ScreeningWorkers);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        // Stopping twice (a host stopped, then disposed) must not stop the server twice.
        if (Interlocked.Exchange(ref _server, null) is not { } server) return;
        server.SendStop();
        await server.WaitForShutdownAsync(cancellationToken);
        server.Dispose();
    }
}
