using System.Text.Json.Nodes;
using System.Net.Http.Json;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Jobs;
using FineTuneService.Core.Models;
using FineTuneService.Service.Tests.Api;
using FineTuneService.Service.Tests.Infrastructure;
using Hangfire;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace FineTuneService.Service.Tests.Worker;

/// <summary>
/// Every base model is ready for every strategy: importing one queues the safety-layer locator on a worker, a
/// <c>frozen_layers</c> job without a layer range waits for it (it does not fail) and then trains with the located
/// layers; a model that ships its <c>safety_layers.json</c> needs no locator at all.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class SafetyLayerLocationTests(PostgresServer server)
{
    private static readonly object FrozenWithoutRange = new { strategy = new[] { "frozen_layers" } };

    [Fact]
    public async Task A_frozen_layers_job_without_a_range_waits_for_the_locator_and_then_trains_with_the_located_layers()
    {
        // The API alone first: the model is imported and its locator queued, but no worker serves the gpu queue yet.
        await using var api = await ApiFactory.StartAsync(server);
        await api.Services.GetRequiredService<BaseModelRegistry>().ImportAsync(TinyBaseModel.Id, TinyBaseModel.Folder, CancellationToken.None);
        var (_, _, client) = await api.CreateTenantAsync("layers");
        var file = await client.UploadValidatedAsync(TinyBaseModel.Jsonl(12));
        var created = await client.PostJsonAsync("/v1/fine_tuning/jobs", new
        {
            model = TinyBaseModel.Id, training_file = file["id"]!.GetValue<string>(), safety = FrozenWithoutRange,
            hyperparameters = new { n_epochs = 1, batch_size = 4 },
        });
        var jobId = created["id"]!.GetValue<string>();

        Assert.Equal("validating_files", created["status"]!.GetValue<string>()); // waiting, not failed
        Assert.Equal(SafetyLayersStatus.Pending, await LayersStatusAsync(api, TinyBaseModel.Id));
        Assert.Contains(await MessagesAsync(client, jobId), m => m.StartsWith($"Waiting for a worker to locate the safety layers of {TinyBaseModel.Id}", StringComparison.Ordinal));

        // A worker on the same database: it locates the layers, and the waiting job trains and succeeds.
        var database = api.Services.GetRequiredService<IConfiguration>().GetConnectionString("Postgres");
        await using var worker = await WorkerHost.StartAsync(server, database: database);
        var done = await worker.WaitForTerminalAsync(jobId, timeoutSeconds: 300);

        Assert.True(done.Status == JobStatus.Succeeded, done.Error?.ToJsonString());
        var model = await api.WithDbAsync(db => db.BaseModels.AsNoTracking().SingleAsync(m => m.Id == TinyBaseModel.Id));
        Assert.Equal(SafetyLayersStatus.Ready, model.SafetyLayersStatus);
        var (first, last) = (model.SafetyLayers!["first_layer"]!.GetValue<int>(), model.SafetyLayers!["last_layer"]!.GetValue<int>());
        Assert.InRange(first, 0, last);
        Assert.InRange(last, first, model.Config["num_hidden_layers"]!.GetValue<int>() - 1);

        var messages = await MessagesAsync(client, jobId);
        Assert.Contains(messages, m => m.StartsWith($"Locating the safety layers of base model {TinyBaseModel.Id} on cpu", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.Contains("benign prompts refused", StringComparison.Ordinal)); // progress of the refinement
        Assert.Contains($"Safety layers of base model {TinyBaseModel.Id} located: layers {first}..{last}", messages);
        Assert.Contains("Files validated, moving job to queued state", messages);
        Assert.Contains("The job has successfully completed", messages);
    }

    [Fact]
    public async Task A_model_whose_layers_cannot_be_located_fails_its_waiting_jobs_with_a_clear_error()
    {
        // Weights cut short: the locator cannot load the model.
        var folder = CopyOfTinyModel();
        await using (var weights = File.OpenWrite(Path.Combine(folder, "model.safetensors"))) weights.SetLength(64);
        await using var api = await ApiFactory.StartAsync(server);
        await api.Services.GetRequiredService<BaseModelRegistry>().ImportAsync("tiny-broken", folder, CancellationToken.None);
        var (_, _, client) = await api.CreateTenantAsync("layers-broken");
        var file = await client.UploadValidatedAsync(TinyBaseModel.Jsonl(12));
        var jobId = (await client.PostJsonAsync("/v1/fine_tuning/jobs", new
        {
            model = "tiny-broken", training_file = file["id"]!.GetValue<string>(), safety = FrozenWithoutRange,
        }))["id"]!.GetValue<string>();

        await using var worker = await WorkerHost.StartAsync(server, database: api.Services.GetRequiredService<IConfiguration>().GetConnectionString("Postgres"));
        var done = await worker.WaitForTerminalAsync(jobId);

        Assert.Equal(JobStatus.Failed, done.Status);
        Assert.Equal("invalid_safety_strategy", done.Error!["code"]!.GetValue<string>());
        Assert.Equal("safety.params.frozen_layers", done.Error!["param"]!.GetValue<string>());
        Assert.Contains("first_layer and last_layer", done.Error!["message"]!.GetValue<string>());
        Assert.Equal(SafetyLayersStatus.Failed, await LayersStatusAsync(api, "tiny-broken"));

        // Now that the API knows the layers cannot be located, the same request is refused at create time; a job
        // that names the range is still accepted.
        var refused = await (await client.PostAsJsonAsync("/v1/fine_tuning/jobs", new
        {
            model = "tiny-broken", training_file = file["id"]!.GetValue<string>(), safety = FrozenWithoutRange,
        })).ErrorAsync(400);
        Assert.Equal("safety.params.frozen_layers", refused["param"]!.GetValue<string>());
        Assert.Contains("first_layer and last_layer", refused["message"]!.GetValue<string>());
        var ranged = await client.PostJsonAsync("/v1/fine_tuning/jobs", new
        {
            model = "tiny-broken", training_file = file["id"]!.GetValue<string>(),
            safety = new { strategy = "frozen_layers", @params = new { frozen_layers = new { first_layer = 0, last_layer = 0 } } },
        });
        Assert.Equal("queued", ranged["status"]!.GetValue<string>());
        Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public async Task A_model_that_ships_its_safety_layers_is_ready_at_import_without_a_locator_run()
    {
        var folder = CopyOfTinyModel();
        var shipped = new JsonObject { ["first_layer"] = 1, ["last_layer"] = 1, ["candidate_first_layer"] = 1, ["candidate_last_layer"] = 1 };
        await File.WriteAllTextAsync(Path.Combine(folder, BaseModelRegistry.SafetyLayersFile), shipped.ToJsonString());
        await using var api = await ApiFactory.StartAsync(server);
        await api.Services.GetRequiredService<BaseModelRegistry>().ImportAsync("tiny-shipped", folder, CancellationToken.None);

        var model = await api.WithDbAsync(db => db.BaseModels.AsNoTracking().SingleAsync(m => m.Id == "tiny-shipped"));
        Assert.Equal(SafetyLayersStatus.Ready, model.SafetyLayersStatus);
        Assert.Equal(1, model.SafetyLayers!["first_layer"]!.GetValue<int>());
        var queued = api.Services.GetRequiredService<JobStorage>().GetMonitoringApi().EnqueuedJobs("gpu", 0, 1000);
        // No locator run queued for it (its registration scoring is queued, as for every new weights).
        Assert.DoesNotContain(queued, j => j.Value.Job.Type == typeof(ISafetyLayerLocationJob) && j.Value.Job.Args[0] as string == "tiny-shipped");
        Assert.Contains(queued, j => j.Value.Job.Type == typeof(IBaseModelScoringJob) && j.Value.Job.Args[0] as string == "tiny-shipped");

        // So a frozen_layers job without a range is queued at once.
        var (_, _, client) = await api.CreateTenantAsync("layers-shipped");
        var file = await client.UploadValidatedAsync(TinyBaseModel.Jsonl(12));
        var created = await client.PostJsonAsync("/v1/fine_tuning/jobs", new
        {
            model = "tiny-shipped", training_file = file["id"]!.GetValue<string>(), safety = FrozenWithoutRange,
        });
        Assert.Equal("queued", created["status"]!.GetValue<string>());
        Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public async Task The_shipped_bootstrap_model_is_ready_for_frozen_layers_at_import()
    {
        // models/safetune-tiny is what run.sh and the API image serve: its located layers must come with it.
        var shipped = Path.Combine(PostgresServer.RepositoryRoot(), "models", "safetune-tiny");
        await using var api = await ApiFactory.StartAsync(server);
        await api.Services.GetRequiredService<BaseModelRegistry>().ImportAsync("safetune-tiny", shipped, CancellationToken.None);

        var model = await api.WithDbAsync(db => db.BaseModels.AsNoTracking().SingleAsync(m => m.Id == "safetune-tiny"));
        Assert.Equal(SafetyLayersStatus.Ready, model.SafetyLayersStatus);
        var (first, last) = (model.SafetyLayers!["first_layer"]!.GetValue<int>(), model.SafetyLayers!["last_layer"]!.GetValue<int>());
        Assert.InRange(first, 0, last);
        Assert.InRange(last, first, model.Config["num_hidden_layers"]!.GetValue<int>() - 1);
    }

    private static string CopyOfTinyModel()
    {
        var folder = Directory.CreateTempSubdirectory("fts-tiny-copy-").FullName;
        foreach (var path in Directory.EnumerateFiles(TinyBaseModel.Folder)) File.Copy(path, Path.Combine(folder, Path.GetFileName(path)));
        return folder;
    }

    private static Task<SafetyLayersStatus> LayersStatusAsync(ApiFactory api, string modelId) =>
        api.WithDbAsync(db => db.BaseModels.Where(m => m.Id == modelId).Select(m => m.SafetyLayersStatus).SingleAsync());

    private static async Task<List<string>> MessagesAsync(HttpClient client, string jobId) =>
        (await client.GetJsonAsync($"/v1/fine_tuning/jobs/{jobId}/events?limit=100"))["data"]!.AsArray()
        .Select(e => e!["message"]!.GetValue<string>()).ToList();
}
