using FineTuneService.Core.Artifacts;
using FineTuneService.Core.Jobs;
using Hangfire;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FineTuneService.Core.Hosting;

public static class ArtifactHostingExtensions
{
    /// <summary>Registers <see cref="IArtifactStore"/> backed by PostgreSQL chunk rows (needs <see cref="DatabaseHostingExtensions.AddFineTuneDatabase"/>).</summary>
    public static IHostApplicationBuilder AddArtifactStore(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<ArtifactStoreOptions>()
            .BindConfiguration(ArtifactStoreOptions.Section)
            .Validate(o => o.ChunkSize is >= 4096 and <= 64 * 1024 * 1024, "Artifacts:ChunkSize must be between 4 KiB and 64 MiB.")
            .ValidateOnStart();
        builder.Services.AddSingleton<IArtifactStore, PostgresArtifactStore>();
        return builder;
    }

    /// <summary>
    /// Artifact retention as a recurring Hangfire job on the default queue (<see cref="ArtifactRetentionJob"/>), for the
    /// API host, whose Hangfire server serves that queue. Every API instance registers the same id, so it runs once
    /// per occurrence whatever the number of replicas.
    /// </summary>
    public static IHostApplicationBuilder AddArtifactRetention(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<ArtifactRetentionOptions>()
            .BindConfiguration(ArtifactRetentionOptions.Section)
            .Validate(o => o.EpochCheckpointsKept >= 1, "Artifacts:Retention:EpochCheckpointsKept must be at least 1.")
            .Validate(o => o.CollectUnreferencedAfter >= TimeSpan.Zero && o.StagingTimeout > TimeSpan.Zero,
                "Artifacts:Retention:CollectUnreferencedAfter must not be negative and StagingTimeout must be positive.")
            .Validate(o => !string.IsNullOrWhiteSpace(o.Schedule), "Artifacts:Retention:Schedule must be a cron expression.")
            .ValidateOnStart();
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.AddScoped<IArtifactRetentionJob, ArtifactRetentionJob>();
        builder.Services.AddHostedService<RetentionSchedule>();
        return builder;
    }

    /// <summary>
    /// Adds or updates the recurring job once Hangfire's storage answers. A replica that does not migrate may start
    /// before its schema exists, so this retries in the background instead of failing the host's start.
    /// </summary>
    private sealed class RetentionSchedule(IRecurringJobManager jobs, IOptions<ArtifactRetentionOptions> options, TimeProvider clock,
        ILogger<RetentionSchedule> logger) : BackgroundService
    {
        private static readonly TimeSpan RetryInterval = TimeSpan.FromSeconds(5);

        protected override async Task ExecuteAsync(CancellationToken stoppingToken)
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                try
                {
                    jobs.AddOrUpdate<IArtifactRetentionJob>(ArtifactRetentionJob.RecurringJobId, Queues.Default,
                        job => job.RunAsync(CancellationToken.None), options.Value.Schedule);
                    return;
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    logger.LogInformation("Artifact retention is not scheduled yet ({Reason}); retrying in {Interval}", e.Message, RetryInterval);
                }
                await Task.Delay(RetryInterval, clock, stoppingToken);
            }
        }
    }
}
