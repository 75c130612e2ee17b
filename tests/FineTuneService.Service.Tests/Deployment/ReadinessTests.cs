using System.Net;
using System.Text.Json.Nodes;
using FineTuneService.Service.Tests.Api;
using FineTuneService.Service.Tests.Infrastructure;
using FineTuneService.Service.Tests.Worker;
using FineTuneService.Core.Data;
using FineTuneService.Core.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace FineTuneService.Service.Tests.Deployment;

[Collection(PostgresCollection.Name)]
public sealed class ReadinessTests(PostgresServer server)
{
    [Fact]
    public async Task Readyz_answers_503_until_migrations_are_applied_and_the_base_models_imported_then_200()
    {
        var database = await server.CreateDatabaseAsync();
        var models = Directory.CreateTempSubdirectory("fts-readiness-models-").FullName;
        try
        {
            CopyFolder(TinyBaseModel.Folder, Path.Combine(models, TinyBaseModel.Id));
            // A replica that does not migrate, started on an empty database: alive, not ready.
            await using var replica = new ApiFactory(database, settings: new Dictionary<string, string?>
            {
                ["Database:MigrateOnStartup"] = "false",
                ["Models:Directory"] = models,
            });
            var client = replica.CreateClient();

            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/healthz")).StatusCode);
            var before = await client.GetAsync("/readyz");
            var report = JsonNode.Parse(await before.Content.ReadAsStringAsync())!;
            Assert.Equal(HttpStatusCode.ServiceUnavailable, before.StatusCode);
            Assert.Equal("unhealthy", report["checks"]!["database"]!["status"]!.GetValue<string>());
            Assert.Contains("pending", report["checks"]!["database"]!["description"]!.GetValue<string>());
            Assert.Equal("unhealthy", report["checks"]!["models"]!["status"]!.GetValue<string>());

            // The migrating host (the API in production) applies the migrations; the replica then imports its models.
            await using (var migrator = new ApiFactory(database))
            {
                _ = migrator.Server;
                var ready = await Eventually.UntilAsync(() => client.GetAsync("/readyz"), r => r.StatusCode == HttpStatusCode.OK,
                    TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(200));
                Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
            }
            var imported = await replica.WithDbAsync(db => db.BaseModels.Select(m => m.Id).ToListAsync());
            Assert.Contains(TinyBaseModel.Id, imported);
        }
        finally
        {
            Directory.Delete(models, recursive: true);
        }
    }

    [Fact]
    public async Task Schemas_other_than_EFs_are_installed_before_the_migrations_that_replicas_wait_for()
    {
        var database = await server.CreateDatabaseAsync();
        var probe = new PendingMigrationsProbe();
        await using var host = new ApiFactory(database, configureServices: services => services.AddSingleton<ISchemaInstaller>(probe));
        _ = host.Server;

        Assert.NotNull(probe.PendingWhenInstalled);
        Assert.NotEmpty(probe.PendingWhenInstalled);
        Assert.Empty(await host.WithDbAsync(db => db.Database.GetPendingMigrationsAsync()));
    }

    /// <summary>Records which EF migrations were still pending when the migrator ran the schema installers.</summary>
    private sealed class PendingMigrationsProbe : ISchemaInstaller
    {
        public IReadOnlyList<string>? PendingWhenInstalled { get; private set; }

        public async Task InstallAsync(string connectionString, CancellationToken cancellationToken)
        {
            var options = new DbContextOptionsBuilder<FineTuneDbContext>().UseNpgsql(connectionString).Options;
            await using var db = new FineTuneDbContext(options);
            PendingWhenInstalled = (await db.Database.GetPendingMigrationsAsync(cancellationToken)).ToList();
        }
    }

    private static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.EnumerateFiles(from)) File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
    }
}
