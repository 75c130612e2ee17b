using System.Diagnostics;
using System.Net;
using FineTuneService.Service.Tests.Api;
using FineTuneService.Service.Tests.Infrastructure;
using FineTuneService.Core.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Npgsql;
using TestDatasets = FineTuneService.Service.Tests.Api.Datasets;

namespace FineTuneService.Service.Tests.Deployment;

/// <summary>
/// The production database set-up: deploy/postgres/roles.sql's migrator and runtime roles, and key-per-file secrets.
/// The API migrates as the migrator and serves as the runtime role, which can write rows but not change the schema.
/// (In a container both connection strings come from secret files; WebApplicationFactory adds its settings after
/// Program.cs's sources, so here they are given as settings and the secret files are tested on their own.)
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class DatabaseRolesTests(PostgresServer server)
{
    [Fact]
    public async Task The_api_migrates_as_the_migrator_and_serves_as_a_runtime_role_that_cannot_change_the_schema()
    {
        var database = await server.CreateDatabaseAsync();
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var (migrator, app) = ($"fts_migrator_{suffix}", $"fts_app_{suffix}");
        await RunRolesScriptAsync(database, migrator, app);
        const string adminKey = "sk-fts-admin-0123456789abcdef";
        await using var api = new ApiFactory(database, "Production", new Dictionary<string, string?>
        {
            ["ConnectionStrings:Postgres"] = As(database, app),
            ["ConnectionStrings:PostgresMigrations"] = As(database, migrator),
            ["Auth:AdminKey"] = adminKey,
        });
        var client = api.CreateClient();
        var ready = await Eventually.UntilAsync(() => client.GetAsync("/readyz"), r => r.StatusCode == HttpStatusCode.OK,
            TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(200));
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);

        // The runtime role does the work: a tenant, an upload validated by Hangfire.
        var (_, _, tenant) = await CreateTenantAsync(api, adminKey);
        var file = await tenant.UploadValidatedAsync(TestDatasets.ValidChat());
        Assert.Equal("processed", file["status"]!.GetValue<string>());

        await using var connection = new NpgsqlConnection(As(database, app));
        await connection.OpenAsync();
        Assert.Equal(migrator, await Scalar(connection, "SELECT tableowner FROM pg_tables WHERE tablename = 'fine_tuning_jobs'"));
        Assert.Equal(migrator, await Scalar(connection, "SELECT schema_owner FROM information_schema.schemata WHERE schema_name = 'hangfire'"));
        var denied = await Assert.ThrowsAsync<PostgresException>(() => Scalar(connection, "CREATE TABLE intruder (id int)"));
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, denied.SqlState);
        denied = await Assert.ThrowsAsync<PostgresException>(() => Scalar(connection, "DROP TABLE fine_tuning_jobs"));
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, denied.SqlState);
    }

    [Fact]
    public void Secret_files_are_configuration_that_wins_over_other_sources()
    {
        var secrets = Directory.CreateTempSubdirectory("fts-secrets-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(secrets, "ConnectionStrings__Postgres"), "Host=db;Username=fts_app;Password=s3cret\n");
            File.WriteAllText(Path.Combine(secrets, "Auth__AdminKey"), "sk-fts-admin-from-a-file");
            var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
            builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["ConnectionStrings:Postgres"] = "Host=db;Username=postgres",
                ["Secrets:Directory"] = secrets,
            });

            builder.AddSecretFiles();

            Assert.Equal("Host=db;Username=fts_app;Password=s3cret", builder.Configuration.GetConnectionString("Postgres"));
            Assert.Equal("sk-fts-admin-from-a-file", builder.Configuration["Auth:AdminKey"]);
        }
        finally
        {
            Directory.Delete(secrets, recursive: true);
        }
    }

    private static async Task<(string, string, HttpClient)> CreateTenantAsync(ApiFactory api, string adminKey)
    {
        var admin = api.ClientWithKey(adminKey);
        var tenant = await admin.PostJsonAsync("/v1/admin/tenants", new { name = "roles" });
        var key = tenant["api_key"]!.GetValue<string>();
        return (tenant["id"]!.GetValue<string>(), key, api.ClientWithKey(key));
    }

    private static string As(string database, string role) =>
        new NpgsqlConnectionStringBuilder(database) { Username = role, Password = "unused-with-trust-auth" }.ConnectionString;

    private static async Task<string?> Scalar(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        return (await command.ExecuteScalarAsync())?.ToString();
    }

    /// <summary>Runs deploy/postgres/roles.sql with psql, as the compose stack's init script does.</summary>
    private static async Task RunRolesScriptAsync(string database, string migrator, string app)
    {
        var builder = new NpgsqlConnectionStringBuilder(database);
        var start = new ProcessStartInfo("psql") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in new[]
                 {
                     "-h", builder.Host!, "-p", builder.Port.ToString(), "-U", builder.Username!, "-d", builder.Database!,
                     "-v", $"migrator={migrator}", "-v", "migrator_password=m", "-v", $"app={app}", "-v", "app_password=a",
                     "-f", Path.Combine(PostgresServer.RepositoryRoot(), "deploy", "postgres", "roles.sql"),
                 })
            start.ArgumentList.Add(argument);
        using var psql = Process.Start(start)!;
        var output = await psql.StandardOutput.ReadToEndAsync();
        var error = await psql.StandardError.ReadToEndAsync();
        await psql.WaitForExitAsync();
        Assert.True(psql.ExitCode == 0, $"roles.sql failed: {error}\n{output}");
    }
}
