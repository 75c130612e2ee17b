using System.Net.Http.Json;
using System.Text.Json.Nodes;
using FineTuneService.Service.Tests.Infrastructure;

namespace FineTuneService.Service.Tests.Api;

/// <summary>The estimate validates its body exactly as create does: the same status and the same error, param included.</summary>
[Collection(PostgresCollection.Name)]
public sealed class JobEstimateApiTests(PostgresServer server, SharedApi shared) : IClassFixture<SharedApi>, IAsyncLifetime
{
    private ApiFactory _api = null!;

    public async Task InitializeAsync() => _api = await shared.GetAsync(server);
    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task Invalid_bodies_get_the_same_error_from_estimate_as_from_create_and_nothing_is_created()
    {
        var (_, _, client) = await _api.CreateTenantAsync("estimate-invalid");
        var (_, _, other) = await _api.CreateTenantAsync("estimate-other");
        var fileId = (await client.UploadValidatedAsync(Datasets.ValidChat()))["id"]!.GetValue<string>();
        var othersFile = (await other.UploadValidatedAsync(Datasets.ValidChat()))["id"]!.GetValue<string>();
        var model = ApiFactory.BaseModelId;

        object[] bodies =
        [
            new { model },
            new { training_file = fileId },
            new { model = "no-such-model", training_file = fileId },
            new { model, training_file = "file-missing" },
            new { model, training_file = othersFile },
            new { model, training_file = fileId, hyperparameters = new { n_epochs = 0 } },
            new { model, training_file = fileId, method = new { type = "supervised", supervised = new { hyperparameters = new { batch_size = "many" } } } },
            new { model, training_file = fileId, safety = new { strategy = "no_such_strategy" } },
            new { model, training_file = fileId, suffix = new string('x', 65) },
        ];
        foreach (var body in bodies)
        {
            var created = await client.PostAsJsonAsync("/v1/fine_tuning/jobs", body);
            var estimated = await client.PostAsJsonAsync("/v1/fine_tuning/jobs/estimate", body);
            var status = (int)created.StatusCode;
            Assert.InRange(status, 400, 404);
            var createError = await created.ErrorAsync(status);
            var estimateError = await estimated.ErrorAsync(status);
            Assert.True(JsonNode.DeepEquals(createError, estimateError), $"{createError} != {estimateError}");
        }
        Assert.Empty((await client.GetJsonAsync("/v1/fine_tuning/jobs"))["data"]!.AsArray());
    }

    [Fact]
    public async Task Queue_positions_move_up_with_an_event_when_a_job_ahead_is_cancelled_or_paused()
    {
        await using var api = await ApiFactory.StartAsync(server); // its own pool: no other test's jobs in the queue
        var (_, _, client) = await api.CreateTenantAsync("queue-moves");
        var fileId = (await client.UploadValidatedAsync(Datasets.ValidChat()))["id"]!.GetValue<string>();
        var ids = new List<string>();
        for (var i = 0; i < 4; i++)
            ids.Add((await client.PostJsonAsync("/v1/fine_tuning/jobs", new { model = ApiFactory.BaseModelId, training_file = fileId }))["id"]!.GetValue<string>());
        async Task<int?> PositionAsync(string id) => (await client.GetJsonAsync($"/v1/fine_tuning/jobs/{id}"))["queue_position"]?.GetValue<int>();
        int?[] positions = await Task.WhenAll(ids.Select(PositionAsync));
        Assert.Equal(new int?[] { 1, 2, 3, 4 }, positions);

        await client.PostJsonAsync($"/v1/fine_tuning/jobs/{ids[0]}/cancel");
        positions = await Task.WhenAll(ids.Select(PositionAsync));
        Assert.Equal(new int?[] { null, 1, 2, 3 }, positions);
        await client.PostJsonAsync($"/v1/fine_tuning/jobs/{ids[2]}/pause");
        positions = await Task.WhenAll(ids.Select(PositionAsync));
        Assert.Equal(new int?[] { null, 1, null, 2 }, positions);

        async Task<List<string>> MessagesAsync(string id) =>
            [.. (await client.GetJsonAsync($"/v1/fine_tuning/jobs/{id}/events?limit=100"))["data"]!.AsArray().Select(e => e!["message"]!.GetValue<string>())];
        Assert.Contains("Moved up to queue position 1: a job ahead of it was cancelled", await MessagesAsync(ids[1]));
        Assert.DoesNotContain(await MessagesAsync(ids[1]), m => m.Contains("was paused"));
        var last = await MessagesAsync(ids[3]);
        Assert.Contains("Moved up to queue position 3: a job ahead of it was cancelled", last);
        Assert.Contains("Moved up to queue position 2: a job ahead of it was paused", last);
    }
}
