using FineTuneService.Core.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FineTuneService.Core.Hosting;

/// <summary>
/// Applies pending EF migrations before the other hosted services start. EF takes a database lock while migrating,
/// so an API and a worker starting together do not race.
/// </summary>
internal sealed class DatabaseMigrator(
    IServiceScopeFactory scopes, IOptions<DatabaseOptions> options, IHostEnvironment environment, ILogger<DatabaseMigrator> logger)
    : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (!(options.Value.MigrateOnStartup ?? environment.IsDevelopment())) return;
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<FineTuneDbContext>();
        logger.LogInformation("Applying pending database migrations");
        await db.Database.MigrateAsync(cancellationToken);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
