using FineTuneService.Core.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FineTuneService.Core.Hosting;

/// <summary>
/// A schema that is not EF's but lives in the same database (Hangfire's tables), installed by
/// <see cref="DatabaseMigrator"/> with the migration role, so no runtime role ever needs DDL rights.
/// </summary>
public interface ISchemaInstaller
{
    Task InstallAsync(string connectionString, CancellationToken cancellationToken);
}

/// <summary>
/// Installs every <see cref="ISchemaInstaller"/>, then applies pending EF migrations, before the other hosted services
/// start, when <see cref="DatabaseOptions.MigrateOnStartup"/> says so (in production: the API only). It connects with
/// <see cref="DatabaseOptions.MigrationConnectionString"/> when one is set. EF takes a database lock while migrating,
/// so hosts starting together do not race. EF goes last because "no pending migrations" is what replicas and
/// <c>/readyz</c> wait for: seen earlier, a replica would enqueue into a Hangfire schema not yet installed.
/// </summary>
internal sealed class DatabaseMigrator(
    IOptions<DatabaseOptions> options, IEnumerable<ISchemaInstaller> installers, IHostEnvironment environment,
    ILogger<DatabaseMigrator> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var database = options.Value;
        if (!(database.MigrateOnStartup ?? environment.IsDevelopment())) return;
        var connection = database.MigrationConnectionString ?? database.ConnectionString;
        var builder = new DbContextOptionsBuilder<FineTuneDbContext>();
        DatabaseHostingExtensions.ConfigureNpgsql(builder, database with { ConnectionString = connection });
        await using var db = new FineTuneDbContext(builder.Options);
        var creator = db.GetService<IRelationalDatabaseCreator>();
        if (!await creator.ExistsAsync(cancellationToken)) await creator.CreateAsync(cancellationToken);
        foreach (var installer in installers) await installer.InstallAsync(connection, cancellationToken);
        logger.LogInformation("Applying pending database migrations");
        await db.Database.MigrateAsync(cancellationToken);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
