using FineTuneService.Core.Jobs;
using Hangfire;
using Hangfire.PostgreSql;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Npgsql;

namespace FineTuneService.Core.Hosting;

/// <summary>Hangfire storage settings: section "Hangfire".</summary>
public sealed record HangfireStorageOptions
{
    public const string Section = "Hangfire";

    public string SchemaName { get; set; } = "hangfire";

    /// <summary>
    /// Fallback poll interval. Workers are woken at once through LISTEN/NOTIFY (long polling), so this only matters
    /// when a notification is lost; kept short so a queued job still starts within about a second.
    /// </summary>
    public TimeSpan QueuePollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long a fetched job stays invisible to other servers without a heartbeat before it is re-queued.</summary>
    public TimeSpan InvisibilityTimeout { get; set; } = TimeSpan.FromMinutes(5);
}

public static class HangfireHostingExtensions
{
    /// <summary>
    /// Registers Hangfire on PostgreSQL, <see cref="IJobScheduler"/>, the <see cref="StateMachine"/> and the
    /// <see cref="Outbox"/> with its sweeper. Hangfire's schema is installed by the host that migrates
    /// (<see cref="DatabaseMigrator"/>, with the migration role; in production the API), never on first use. Servers
    /// are the hosts' business: the API runs one for the default queue, the worker one per device on the gpu queue.
    /// </summary>
    public static IHostApplicationBuilder AddHangfireStorage(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<HangfireStorageOptions>()
            .BindConfiguration(HangfireStorageOptions.Section)
            .Validate(o => o.QueuePollInterval > TimeSpan.Zero && o.QueuePollInterval <= TimeSpan.FromSeconds(2),
                "Hangfire:QueuePollInterval must be positive and at most 2 s so queued jobs start promptly.")
            .ValidateOnStart();

        builder.Services.AddHangfire((services, configuration) =>
        {
            var database = services.GetRequiredService<IOptions<DatabaseOptions>>().Value;
            var hangfire = services.GetRequiredService<IOptions<HangfireStorageOptions>>().Value;
            configuration
                .SetDataCompatibilityLevel(CompatibilityLevel.Version_180)
                .UseSimpleAssemblyNameTypeSerializer()
                .UseRecommendedSerializerSettings()
                .UsePostgreSqlStorage(connection => connection.UseNpgsqlConnection(database.ConnectionString), new PostgreSqlStorageOptions
                {
                    SchemaName = hangfire.SchemaName,
                    PrepareSchemaIfNecessary = false,
                    EnableLongPolling = true,
                    QueuePollInterval = hangfire.QueuePollInterval,
                    UseSlidingInvisibilityTimeout = true,
                    InvisibilityTimeout = hangfire.InvisibilityTimeout,
                });
        });

        builder.Services.AddSingleton<IJobScheduler, HangfireJobScheduler>();
        builder.Services.AddSingleton<ISchemaInstaller, HangfireSchemaInstaller>();
        builder.Services.AddSingleton<StateMachine>();

        // Enqueues commit with the rows that need them (an outbox row per enqueue); every host sweeps up what a dead
        // process left unsent.
        builder.Services.AddOptions<OutboxOptions>()
            .BindConfiguration(OutboxOptions.Section)
            .Validate(o => o.SweepInterval > TimeSpan.Zero && o.RetryAfter > TimeSpan.Zero,
                "Outbox:SweepInterval and Outbox:RetryAfter must be positive.")
            .ValidateOnStart();
        builder.Services.AddSingleton<Outbox>();
        builder.Services.AddHostedService<OutboxSweeper>();
        return builder;
    }

    private sealed class HangfireSchemaInstaller(IOptions<HangfireStorageOptions> options) : ISchemaInstaller
    {
        public async Task InstallAsync(string connectionString, CancellationToken cancellationToken)
        {
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync(cancellationToken);
            PostgreSqlObjectsInstaller.Install(connection, options.Value.SchemaName);
        }
    }
}
