using FineTuneService.Core.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;

namespace FineTuneService.Core.Data;

/// <summary>
/// Lets <c>dotnet ef migrations add X --project src/FineTuneService.Core</c> build the model without a host.
/// Adding a migration never connects; <c>database update</c> uses FTS_DESIGN_CONNECTION or the dev cluster.
/// </summary>
internal sealed class DesignTimeDbContextFactory : IDesignTimeDbContextFactory<FineTuneDbContext>
{
    public FineTuneDbContext CreateDbContext(string[] args)
    {
        var connection = Environment.GetEnvironmentVariable("FTS_DESIGN_CONNECTION")
            ?? "Host=127.0.0.1;Port=5544;Username=fts;Database=fts";
        var options = new DbContextOptionsBuilder<FineTuneDbContext>();
        DatabaseHostingExtensions.ConfigureNpgsql(options, new DatabaseOptions { ConnectionString = connection });
        return new FineTuneDbContext(options.Options);
    }
}
