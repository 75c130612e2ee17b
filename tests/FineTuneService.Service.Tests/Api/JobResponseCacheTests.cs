using System.Net;
using System.Text.Json.Nodes;
using FineTuneService.Api.Jobs;
using FineTuneService.Core.Jobs;
using FineTuneService.Service.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace FineTuneService.Service.Tests.Api;

/// <summary>
/// Polls of a job, its events and its checkpoints are answered from memory, and a change made anywhere (here: straight
/// in SQL, as the worker host's writes are) reaches the next poll through PostgreSQL's notifications. Cached answers
/// live ten minutes in this host, so only the notification can explain a fresh answer.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class JobResponseCacheTests(PostgresServer server) : IAsyncLifetime
{
    private static readonly TimeSpan NoticeDeadline = TimeSpan.FromSeconds(20);
    private ApiFactory _api = null!;

    public async Task InitializeAsync()
    {
        _api = await ApiFactory.StartAsync(server, settings: new Dictionary<string, string?> { ["Api:JobResponseCache:MaxAge"] = "00:10:00" });
        var feed = _api.Services.GetRequiredService<JobChangeFeed>();
        Assert.True(await Eventually.UntilAsync(() => Task.FromResult(feed.IsListening), listening => listening, NoticeDeadline));
    }

    public async Task DisposeAsync() => await _api.DisposeAsync();

    private async Task<(HttpClient Client, string JobId)> QueuedJobAsync(string tenant, HttpClient? client = null)
    {
        client ??= (await _api.CreateTenantAsync(tenant)).Client;
        var file = await client.UploadValidatedAsync(Datasets.ValidChat());
        var job = await client.PostJsonAsync("/v1/fine_tuning/jobs", new { model = ApiFactory.BaseModelId, training_file = file["id"]!.GetValue<string>() });
        return (client, job["id"]!.GetValue<string>());
    }

    private Task SqlAsync(FormattableString statement) => _api.WithDbAsync(db => db.Database.ExecuteSqlInterpolatedAsync(statement));

    [Fact]
    public async Task A_repeated_poll_is_served_from_memory_until_the_job_changes_in_the_database()
    {
        var (client, jobId) = await QueuedJobAsync("cache-poll");
        var first = await client.GetAsync($"/v1/fine_tuning/jobs/{jobId}");
        Assert.False(first.Headers.Age.HasValue);
        var second = await client.GetAsync($"/v1/fine_tuning/jobs/{jobId}");
        Assert.True(second.Headers.Age.HasValue, "the second poll should come from the cache");
        Assert.Equal(await first.Content.ReadAsStringAsync(), await second.Content.ReadAsStringAsync());

        await SqlAsync($"""UPDATE fine_tuning_jobs SET "TrainedTokens" = 1234 WHERE "Id" = {jobId}""");
        var job = await Eventually.UntilAsync(() => client.GetJsonAsync($"/v1/fine_tuning/jobs/{jobId}"),
            j => j["trained_tokens"]?.GetValue<long>() == 1234, NoticeDeadline);
        Assert.Equal(1234, job["trained_tokens"]!.GetValue<long>());
    }

    [Fact]
    public async Task A_new_event_or_checkpoint_reaches_the_next_poll_of_its_list()
    {
        var (client, jobId) = await QueuedJobAsync("cache-events");
        var before = (await client.GetJsonAsync($"/v1/fine_tuning/jobs/{jobId}/events"))["data"]!.AsArray().Count;
        Assert.True((await client.GetAsync($"/v1/fine_tuning/jobs/{jobId}/events")).Headers.Age.HasValue);

        await _api.WithDbAsync(db =>
        {
            db.JobEvents.Add(JobEvents.Message(jobId, "written by another host", at: DateTime.UtcNow));
            return db.SaveChangesAsync();
        });
        var events = await Eventually.UntilAsync(() => client.GetJsonAsync($"/v1/fine_tuning/jobs/{jobId}/events"),
            page => page["data"]!.AsArray().Count > before, NoticeDeadline);
        Assert.Equal("written by another host", events["data"]![0]!["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_status_change_of_one_job_moves_the_cached_queue_position_of_another()
    {
        var (client, ahead) = await QueuedJobAsync("cache-queue");
        var (_, behind) = await QueuedJobAsync("cache-queue", client);
        var position = (await client.GetJsonAsync($"/v1/fine_tuning/jobs/{behind}"))["queue_position"]!.GetValue<int>();
        Assert.True((await client.GetAsync($"/v1/fine_tuning/jobs/{behind}")).Headers.Age.HasValue);

        await SqlAsync($"""UPDATE fine_tuning_jobs SET "Status" = 'Cancelled', "FinishedAt" = now() WHERE "Id" = {ahead}""");
        var moved = await Eventually.UntilAsync(() => client.GetJsonAsync($"/v1/fine_tuning/jobs/{behind}"),
            j => j["queue_position"]?.GetValue<int>() == position - 1, NoticeDeadline);
        Assert.Equal(position - 1, moved["queue_position"]!.GetValue<int>());
    }

    [Fact]
    public async Task A_cached_job_stays_not_found_for_another_tenant_and_the_owners_cancel_is_read_at_once()
    {
        var (owner, jobId) = await QueuedJobAsync("cache-owner");
        await owner.GetJsonAsync($"/v1/fine_tuning/jobs/{jobId}");
        Assert.True((await owner.GetAsync($"/v1/fine_tuning/jobs/{jobId}")).Headers.Age.HasValue);

        var (_, _, other) = await _api.CreateTenantAsync("cache-other");
        foreach (var route in new[] { "", "/events", "/checkpoints" })
            await (await other.GetAsync($"/v1/fine_tuning/jobs/{jobId}{route}")).ErrorAsync(404);

        await owner.PostJsonAsync($"/v1/fine_tuning/jobs/{jobId}/cancel");
        var after = await owner.GetAsync($"/v1/fine_tuning/jobs/{jobId}");
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
        Assert.Equal("cancelled", JsonNode.Parse(await after.Content.ReadAsStringAsync())!["status"]!.GetValue<string>());
    }
}
