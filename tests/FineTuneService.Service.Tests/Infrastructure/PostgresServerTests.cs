using Npgsql;

namespace FineTuneService.Service.Tests.Infrastructure;

[Collection(PostgresCollection.Name)]
public sealed class PostgresServerTests(PostgresServer server)
{
    [Fact]
    public async Task Each_database_is_fresh_and_reachable()
    {
        var first = await server.CreateDatabaseAsync();
        var second = await server.CreateDatabaseAsync();
        Assert.NotEqual(first, second);

        await using var connection = new NpgsqlConnection(first);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("select count(*) from information_schema.tables where table_schema = 'public'", connection);
        Assert.Equal(0L, (long)(await command.ExecuteScalarAsync())!);
    }
}
