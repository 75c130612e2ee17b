using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Service.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace FineTuneService.Service.Tests.Api;

/// <summary>
/// The migration that makes paused and awaiting-screening statuses keeps existing rows readable: rows written by the
/// schema before it (a queued job with the Paused flag, a file with a pending screening marker, rows left waiting)
/// read back in their new states, and the waiting ones get an outbox message so a lost enqueue of old still happens.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class JobStatesMigrationTests(PostgresServer server)
{
    private const string Before = "20261201233952_InferenceEndpointsAndOutputGuard";

    [Fact]
    public async Task Rows_of_the_earlier_schema_read_back_in_their_new_states()
    {
        var options = new DbContextOptionsBuilder<FineTuneDbContext>().UseNpgsql(await server.CreateDatabaseAsync()).Options;
        await using var db = new FineTuneDbContext(options);
        var migrator = db.GetService<IMigrator>();
        await migrator.MigrateAsync(Before);
        // Raw SQL takes {0}-style placeholders: the JSON literals' braces are doubled.
        await db.Database.ExecuteSqlRawAsync("""
            INSERT INTO tenants ("Id", "Name", "CreatedAt") VALUES ('tenant-m', 'm', now());
            INSERT INTO files ("Id", "TenantId", "Filename", "Purpose", "Bytes", "Sha256", "Status", "CreatedAt", "ValidationReport") VALUES
              ('file-screening', 'tenant-m', 'a.jsonl', 'fine-tune', 1, 'x', 'Uploaded', now(), '{{"is_valid": true, "screening": {{"status": "pending"}}}}'),
              ('file-new', 'tenant-m', 'b.jsonl', 'fine-tune', 1, 'x', 'Uploaded', now(), NULL),
              ('file-done', 'tenant-m', 'c.jsonl', 'fine-tune', 1, 'x', 'Processed', now(), '{{"is_valid": true, "screening": {{"status": "passed"}}}}');
            INSERT INTO fine_tuning_jobs ("Id", "TenantId", "Model", "TrainingFileId", "Status", "Control", "Paused", "Hyperparameters", "Safety", "Seed", "CreatedAt", "Attempts", "Review") VALUES
              ('ftjob-paused', 'tenant-m', 'm', 'file-done', 'Queued', 'None', true, '{{}}', '{{}}', 1, now(), 1, 'NotRequired'),
              ('ftjob-queued', 'tenant-m', 'm', 'file-done', 'Queued', 'None', false, '{{}}', '{{}}', 1, now(), 0, 'NotRequired'),
              ('ftjob-done', 'tenant-m', 'm', 'file-done', 'Succeeded', 'None', false, '{{}}', '{{}}', 1, now(), 1, 'NotRequired');
            """);

        await migrator.MigrateAsync();

        db.ChangeTracker.Clear();
        var jobs = await db.Jobs.AsNoTracking().ToDictionaryAsync(j => j.Id, j => j.Status);
        Assert.Equal(JobStatus.Paused, jobs["ftjob-paused"]);
        Assert.Equal(JobStatus.Queued, jobs["ftjob-queued"]);
        Assert.Equal(JobStatus.Succeeded, jobs["ftjob-done"]);
        var files = await db.Files.AsNoTracking().ToDictionaryAsync(f => f.Id, f => f.Status);
        Assert.Equal(FileStatus.AwaitingScreening, files["file-screening"]);
        Assert.Equal(FileStatus.Uploaded, files["file-new"]);
        Assert.Equal(FileStatus.Processed, files["file-done"]);
        var outbox = (await db.Outbox.AsNoTracking().OrderBy(m => m.TargetId).ToListAsync()).Select(m => $"{m.Dispatch}:{m.TargetId}");
        Assert.Equal(["FileValidation:file-new", "FileScreening:file-screening", "Training:ftjob-queued"], outbox);

        // And back: the Paused flag and the uploaded status return.
        await migrator.MigrateAsync(Before);
        var flags = await db.Database.SqlQueryRaw<string>("""SELECT "Id" || ':' || "Status" || ':' || "Paused" AS "Value" FROM fine_tuning_jobs ORDER BY "Id" """).ToListAsync();
        Assert.Equal(["ftjob-done:Succeeded:false", "ftjob-paused:Queued:true", "ftjob-queued:Queued:false"], flags);
        var fileStatus = await db.Database.SqlQueryRaw<string>("""SELECT "Status" AS "Value" FROM files WHERE "Id" = 'file-screening'""").SingleAsync();
        Assert.Equal("Uploaded", fileStatus);
    }
}
