using FineTuneService.Service.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace FineTuneService.Service.Tests.Api;

/// <summary>Concurrent creates with one <c>Idempotency-Key</c>: one job, the same answer to all, and no error in the logs.</summary>
[Collection(PostgresCollection.Name)]
public sealed class IdempotencyRaceTests(PostgresServer server)
{
    [Fact]
    public async Task Concurrent_creates_with_one_key_make_one_job_and_log_no_error()
    {
        var logs = new CapturedLogs();
        await using var api = new ApiFactory(await server.CreateDatabaseAsync(),
            configureServices: services => services.AddSingleton<ILoggerProvider>(logs));
        await api.WithDbAsync(async db =>
        {
            db.BaseModels.Add(new Core.Domain.BaseModel { Id = ApiFactory.BaseModelId, ArtifactSha256 = new string('a', 64), Config = new() });
            return await db.SaveChangesAsync();
        });
        var (tenantId, _, client) = await api.CreateTenantAsync("race");
        var file = await client.UploadValidatedAsync(Datasets.ValidChat());
        var body = new { model = ApiFactory.BaseModelId, training_file = file["id"]!.GetValue<string>() };
        var errorsBefore = logs.Errors.Count;

        var answers = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => client.PostJsonAsync("/v1/fine_tuning/jobs", body, idempotencyKey: "race-1")));

        var ids = answers.Select(a => a["id"]!.GetValue<string>()).Distinct().ToList();
        Assert.Single(ids);
        Assert.Equal(1, await api.WithDbAsync(db => db.Jobs.CountAsync(j => j.TenantId == tenantId && j.IdempotencyKey == "race-1")));
        Assert.Equal(1, await api.WithDbAsync(db => db.JobEvents.CountAsync(e => e.JobId == ids[0] && e.Message.StartsWith("Created fine-tuning job"))));
        Assert.True(logs.Errors.Count == errorsBefore, string.Join("\n", logs.Errors.Skip(errorsBefore)));
    }
}
