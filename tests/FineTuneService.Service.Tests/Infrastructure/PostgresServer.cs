using System.Diagnostics;
using Npgsql;

namespace FineTuneService.Service.Tests.Infrastructure;

/// <summary>
/// The PostgreSQL server the tests run against: the one deploy/dev/test.sh started (FTS_TEST_POSTGRES), or a
/// private cluster started here through deploy/dev/postgres.sh when the tests run on their own (IDE, plain dotnet test).
/// Each caller gets a fresh database, so tests never see each other's rows.
/// </summary>
public sealed class PostgresServer : IAsyncLifetime
{
    private string? _ownedDirectory;

    public string AdminConnectionString { get; private set; } = "";

    public async Task InitializeAsync()
    {
        var fromScript = Environment.GetEnvironmentVariable("FTS_TEST_POSTGRES");
        if (!string.IsNullOrWhiteSpace(fromScript))
        {
            AdminConnectionString = fromScript;
            return;
        }

        _ownedDirectory = Directory.CreateTempSubdirectory("fts-pg-").FullName;
        File.SetUnixFileMode(_ownedDirectory, (UnixFileMode)0b111_101_101);
        AdminConnectionString = (await RunScriptAsync("start", _ownedDirectory, "auto", "--fast")).Trim();
    }

    public async Task DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        if (_ownedDirectory is null) return;
        await RunScriptAsync("stop", _ownedDirectory);
        Directory.Delete(_ownedDirectory, recursive: true);
    }

    /// <summary>Creates an empty database and returns its connection string.</summary>
    public async Task<string> CreateDatabaseAsync()
    {
        var name = "fts_test_" + Guid.NewGuid().ToString("N")[..12];
        await using (var connection = new NpgsqlConnection(AdminConnectionString))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
            await command.ExecuteNonQueryAsync();
        }
        return new NpgsqlConnectionStringBuilder(AdminConnectionString) { Database = name }.ConnectionString;
    }

    private static async Task<string> RunScriptAsync(params string[] arguments)
    {
        var script = Path.Combine(RepositoryRoot(), "deploy", "dev", "postgres.sh");
        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(script);
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        using var process = Process.Start(start)!;
        var output = await process.StandardOutput.ReadToEndAsync();
        var error = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"postgres.sh {string.Join(' ', arguments)} failed: {error}");
        return output;
    }

    /// <summary>The checkout the tests run from (the folder of FineTuneService.sln).</summary>
    internal static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "FineTuneService.sln"))) return dir.FullName;
        throw new InvalidOperationException("Cannot find the repository root above " + AppContext.BaseDirectory);
    }
}

/// <summary>One PostgreSQL server for the whole test assembly.</summary>
[CollectionDefinition(Name)]
public sealed class PostgresCollection : ICollectionFixture<PostgresServer>
{
    public const string Name = "postgres";
}
