using FineTuneService.Core.Hosting;
using FineTuneService.Service.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace FineTuneService.Service.Tests.Api;

/// <summary>A bare host with Core's registrations on a fresh, migrated database.</summary>
internal static class CoreHost
{
    public static async Task<IHost> StartAsync(PostgresServer server, int chunkSize = 1024 * 1024, Action<HostApplicationBuilder>? configure = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { EnvironmentName = "Testing" });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ConnectionStrings:Postgres"] = await server.CreateDatabaseAsync(),
            ["Database:MigrateOnStartup"] = "true",
            ["Artifacts:ChunkSize"] = chunkSize.ToString(),
        });
        builder.AddFineTuneDatabase().AddArtifactStore().AddHangfireStorage().AddBaseModelRegistry(); // imports queue the safety-layer locator
        configure?.Invoke(builder);
        var host = builder.Build();
        await host.StartAsync();
        return host;
    }
}
