using FineTuneService.Core.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Npgsql;

namespace FineTuneService.Core.Hosting;

/// <summary>Database settings: section "Database"; the connection string is <c>ConnectionStrings:Postgres</c>.</summary>
public sealed record DatabaseOptions
{
    public const string Section = "Database";

    /// <summary>From <c>ConnectionStrings:Postgres</c>: the runtime role (reads and writes rows, owns nothing).</summary>
    public string ConnectionString { get; set; } = "";

    /// <summary>
    /// From <c>ConnectionStrings:PostgresMigrations</c>: the role that owns the schema and applies migrations (EF's
    /// and Hangfire's). Unset means the runtime connection migrates too, as in development.
    /// </summary>
    public string? MigrationConnectionString { get; set; }

    /// <summary>Apply pending EF migrations when the host starts. Unset means: only in Development.</summary>
    public bool? MigrateOnStartup { get; set; }

    /// <summary>How often EF retries a command that failed with a transient fault.</summary>
    public int MaxRetryCount { get; set; } = 5;

    /// <summary>
    /// Npgsql's <c>Max Auto Prepare</c> for EF's connections when the connection string does not set it: the
    /// statements used most (API polling) stay prepared on the server, which then neither parses nor plans them again.
    /// 0 turns it off.
    /// </summary>
    public int MaxAutoPrepare { get; set; } = 32;
}

public static class DatabaseHostingExtensions
{
    /// <summary>
    /// Registers <see cref="FineTuneDbContext"/> (scoped) and <see cref="IDbContextFactory{FineTuneDbContext}"/>, both
    /// from one context pool, on Npgsql with transient-fault retries, validates <see cref="DatabaseOptions"/> at start, and applies migrations
    /// at start when <see cref="DatabaseOptions.MigrateOnStartup"/> says so (call this before hosted services that
    /// need the schema, e.g. Hangfire servers).
    /// </summary>
    public static IHostApplicationBuilder AddFineTuneDatabase(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<DatabaseOptions>()
            .BindConfiguration(DatabaseOptions.Section)
            .Configure<IConfiguration>((options, configuration) =>
            {
                options.ConnectionString = configuration.GetConnectionString("Postgres") ?? options.ConnectionString;
                options.MigrationConnectionString = NullIfBlank(configuration.GetConnectionString("PostgresMigrations"))
                    ?? options.MigrationConnectionString;
            })
            .Validate(options => !string.IsNullOrWhiteSpace(options.ConnectionString),
                "ConnectionStrings:Postgres is required (e.g. Host=127.0.0.1;Port=5544;Username=fts;Database=fts).")
            .ValidateOnStart();

        // One clock for the whole host: rows, events, leases and recovery read it; tests can replace it.
        builder.Services.TryAddSingleton(TimeProvider.System);

        // Pooled: a request rents a configured context instead of building one (and its service graph) each time.
        // The scoped context is rented from the same pool and returned when the scope ends.
        builder.Services.AddPooledDbContextFactory<FineTuneDbContext>((services, options) =>
        {
            ConfigureNpgsql(options, services.GetRequiredService<IOptions<DatabaseOptions>>().Value);
            options.AddInterceptors(new RowTimestamps(services.GetRequiredService<TimeProvider>()));
        });
        builder.Services.AddScoped(services => services.GetRequiredService<IDbContextFactory<FineTuneDbContext>>().CreateDbContext());

        builder.Services.AddHostedService<DatabaseMigrator>();
        builder.Services.AddHealthChecks().AddCheck<DatabaseReadinessCheck>("database", tags: [HealthEndpoints.ReadyTag],
            timeout: HealthEndpoints.CheckTimeout);
        return builder;
    }

    private static string? NullIfBlank(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;

    internal static void ConfigureNpgsql(DbContextOptionsBuilder options, DatabaseOptions database) =>
        options.UseNpgsql(EfConnectionString(database), npgsql => npgsql
            .EnableRetryOnFailure(database.MaxRetryCount)
            .MigrationsHistoryTable("__ef_migrations_history"));

    private static string EfConnectionString(DatabaseOptions database)
    {
        var connection = new NpgsqlConnectionStringBuilder(database.ConnectionString);
        if (connection.MaxAutoPrepare == 0 && database.MaxAutoPrepare > 0) connection.MaxAutoPrepare = database.MaxAutoPrepare;
        return connection.ConnectionString;
    }
}
