using FineTuneService.Core.Data;
using FineTuneService.Core.Models;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FineTuneService.Core.Hosting;

public static class BaseModelHostingExtensions
{
    /// <summary>
    /// Registers <see cref="BaseModelRegistry"/> and, when <c>Models:Directory</c> is set, imports its model folders in
    /// the background once the database has every migration (applied by this host or by another); <c>/readyz</c>
    /// answers 503 until that import is done. Then it re-queues the safety-layer locator for models still waiting
    /// for it (an enqueue lost with a process that died). Needs the database, the artifact store and Hangfire storage.
    /// </summary>
    public static IHostApplicationBuilder AddBaseModelRegistry(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<ModelsOptions>().BindConfiguration(ModelsOptions.Section);
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<BaseModelRegistry>();
        builder.Services.AddSingleton<BaseModelImporter>();
        builder.Services.AddHostedService(services => services.GetRequiredService<BaseModelImporter>());
        builder.Services.AddHealthChecks().AddCheck<BaseModelImporter>("models", tags: [HealthEndpoints.ReadyTag]);
        return builder;
    }

    internal sealed class BaseModelImporter(
        BaseModelRegistry registry,
        IDbContextFactory<FineTuneDbContext> contexts,
        IOptions<ModelsOptions> options,
        IHostEnvironment environment,
        TimeProvider clock,
        ILogger<BaseModelImporter> logger) : BackgroundService, IHealthCheck
    {
        private static readonly TimeSpan MigrationPoll = TimeSpan.FromSeconds(1);
        private volatile string? _done;
        private volatile string _waiting = "waiting for database migrations";

        protected override async Task ExecuteAsync(CancellationToken stoppingToken)
        {
            var imported = await ImportDirectoryAsync(stoppingToken);
            await RequeuePendingSafetyLayersAsync(except: imported, stoppingToken); // those just imported were queued
        }

        private async Task<IReadOnlyList<string>> ImportDirectoryAsync(CancellationToken stoppingToken)
        {
            if (string.IsNullOrWhiteSpace(options.Value.Directory))
            {
                _done = "no Models:Directory configured";
                return [];
            }
            var directory = Path.GetFullPath(options.Value.Directory, environment.ContentRootPath);
            await WaitForMigrationsAsync(stoppingToken);
            if (!Directory.Exists(directory))
            {
                logger.LogWarning("Models:Directory {Directory} does not exist; no base models imported", directory);
                _done = $"{directory} does not exist; nothing imported";
                return [];
            }
            _waiting = $"importing {directory}";
            try
            {
                var imported = await registry.ImportDirectoryAsync(directory, stoppingToken);
                logger.LogInformation("Base models in {Directory}: {Count} imported or updated", directory, imported.Count);
                _done = $"{directory} imported";
                return imported;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // Not ready, but alive: an admin can fix the folder and call POST /v1/admin/models/import.
                logger.LogError(e, "Importing base models from {Directory} failed", directory);
                _waiting = $"import of {directory} failed: {e.Message}";
                return [];
            }
        }

        private async Task RequeuePendingSafetyLayersAsync(IReadOnlyList<string> except, CancellationToken stoppingToken)
        {
            try
            {
                await WaitForMigrationsAsync(stoppingToken);
                if (await registry.RequestPendingSafetyLayersAsync(except, stoppingToken) is { Count: > 0 } pending)
                    logger.LogInformation("Safety layers to be located by a worker for base models: {Models}", string.Join(", ", pending));
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogWarning(e, "Could not re-queue the safety-layer locator; the next start tries again");
            }
        }

        /// <summary>A replica that does not migrate waits here until the one that does (or a migration job) has.</summary>
        private async Task WaitForMigrationsAsync(CancellationToken stoppingToken)
        {
            while (true)
            {
                try
                {
                    await using var db = await contexts.CreateDbContextAsync(stoppingToken);
                    if (!(await db.Database.GetPendingMigrationsAsync(stoppingToken)).Any()) return;
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    logger.LogDebug(e, "Database not reachable yet; base model import waits");
                }
                await Task.Delay(MigrationPoll, clock, stoppingToken);
            }
        }

        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
            Task.FromResult(_done is { } done ? HealthCheckResult.Healthy(done) : HealthCheckResult.Unhealthy(_waiting));
    }
}
