using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using FineTuneService.Api.Auth;
using FineTuneService.Core.Data;
using FineTuneService.Core.Models;
using FineTuneService.Service.Tests.Api;
using FineTuneService.Service.Tests.Infrastructure;
using FineTuneService.Worker.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;
using OpenAI.Files;
using OpenAI.FineTuning;
using Xunit.Abstractions;

namespace FineTuneService.Service.Tests.Worker;

/// <summary>
/// The whole loop as a tenant sees it, through the official OpenAI .NET SDK over a real loopback Kestrel socket (the
/// SDK's own HTTP transport, no in-memory handler): the API host with the worker's device server in the same process
/// (as in the dev run), real PostgreSQL, Hangfire and TorchSharp.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class OpenAiSdkEndToEndTests(PostgresServer server, ITestOutputHelper output)
{
#pragma warning disable OPENAI001 // the SDK marks fine-tuning as experimental
    [Fact]
    public async Task A_tenant_fine_tunes_through_the_sdk_and_another_tenant_sees_none_of_it()
    {
        var cache = Directory.CreateTempSubdirectory("fts-e2e-cache-").FullName;
        await using var app = new ApiFactory(await server.CreateDatabaseAsync(), settings: new TestWorkerSettings(cache) // safety evaluation off: the gate end to end is SafetyGateApiTests
        {
            ["Worker:CheckpointEverySteps"] = "5",
            ["Worker:MetricsEverySteps"] = "1",
        }, configureServices: services => services.AddFineTuneWorker());
        app.UseKestrel(0);
        app.StartServer();
        try
        {
            await app.Services.GetRequiredService<BaseModelRegistry>().ImportAsync(TinyBaseModel.Id, TinyBaseModel.Folder, CancellationToken.None);
            var owner = Sdk(app, await CreateTenantKeyAsync(app, "e2e-owner"));
            var other = Sdk(app, await CreateTenantKeyAsync(app, "e2e-other"));

            // 1. Upload a JSONL file and wait for its validation.
            var files = owner.GetOpenAIFileClient();
            OpenAIFile file = await files.UploadFileAsync(BinaryData.FromString(TinyBaseModel.Jsonl(24)), "train.jsonl", FileUploadPurpose.FineTune);
            file = await Eventually.UntilAsync(async () => (OpenAIFile)await files.GetFileAsync(file.Id),
                f => f.Status != FileStatus.Uploaded, TimeSpan.FromSeconds(30));
            Assert.Equal(FileStatus.Processed, file.Status);

            // 2. Create a job on the tiny base model: 24 examples, batch 4, 2 epochs = 12 steps.
            var fineTuning = owner.GetFineTuningClient();
            var job = await fineTuning.FineTuneAsync(TinyBaseModel.Id, file.Id, waitUntilCompleted: false, new FineTuningOptions
            {
                Suffix = "e2e",
                Seed = 7,
                TrainingMethod = FineTuningTrainingMethod.CreateSupervised(
                    batchSize: 4, epochCount: 2, learningRate: HyperparameterLearningRate.CreateAuto()),
            });

            // 3. Poll it to succeeded.
            await Eventually.UntilAsync(async () => { await job.UpdateStatusAsync(); return job; },
                j => j.HasCompleted, TimeSpan.FromSeconds(120), TimeSpan.FromMilliseconds(100));
            var body = JsonNode.Parse(job.GetRawResponse().Content.ToString())!;
            Assert.True(job.Status == FineTuningStatus.Succeeded, body.ToJsonString());
            var model = body["fine_tuned_model"]!.GetValue<string>();
            Assert.StartsWith($"ft:{TinyBaseModel.Id}:", model);
            Assert.EndsWith($":e2e:{job.JobId}", model);
            // Read from the wire: the SDK's typed job keeps some fields from the create response.
            Assert.True(body["trained_tokens"]!.GetValue<long>() > 0);
            Assert.Equal(0.1, body["hyperparameters"]!["learning_rate_multiplier"]!.GetValue<double>()); // "auto" resolved by the worker

            // 4. Page through events (newest first) and checkpoints.
            var events = new List<FineTuningEvent>();
            await foreach (var e in job.GetEventsAsync(new GetEventsOptions { PageSize = 4 })) events.Add(e);
            Assert.Equal("The job has successfully completed", events[0].Message);
            // Newest first by the order they happened in (wire timestamps are whole seconds, so they cannot show it).
            await using (var db = await app.Services.GetRequiredService<IDbContextFactory<FineTuneDbContext>>().CreateDbContextAsync())
                Assert.Equal(await db.JobEvents.AsNoTracking().Where(e => e.JobId == job.JobId).OrderByDescending(e => e.Sequence).Select(e => e.Id).ToListAsync(),
                    events.Select(e => e.Id));
            var metrics = events.Where(e => e.Kind == FineTuningJobEventKind.Metrics).ToList();
            Assert.Equal(12, metrics.Count);
            var last = JsonNode.Parse(metrics[0].Data.ToString())!;
            Assert.Equal(12, last["step"]!.GetValue<int>());
            Assert.True(last["tokens_per_second"]!.GetValue<double>() > 0);

            var checkpoints = new List<FineTuningCheckpoint>();
            await foreach (var c in job.GetCheckpointsAsync(new GetCheckpointsOptions { PageSize = 1 })) checkpoints.Add(c);
            // One checkpoint per epoch (6 steps each); the resume states at steps 5 and 10 are not listed.
            Assert.Equal([12, 6], checkpoints.Select(c => c.StepNumber).OrderDescending());
            Assert.All(checkpoints, c =>
            {
                Assert.Equal($"{model}:ckpt-step-{c.StepNumber}", c.ModelId);
                Assert.NotNull(c.Metrics.TrainLoss);
                Assert.InRange(c.Metrics.TrainMeanTokenAccuracy!.Value, 0, 1);
            });

            // 5. The new model is listed for its tenant.
            var models = (await owner.GetOpenAIModelClient().GetModelsAsync()).Value.Select(m => m.Id).ToList();
            Assert.Contains(model, models);
            Assert.Contains(TinyBaseModel.Id, models);

            // A second tenant sees none of it: not the job, its events, the file or the model.
            Assert.Empty(await ToListAsync(other.GetFineTuningClient().GetJobsAsync()));
            Assert.Equal(404, (await Assert.ThrowsAsync<ClientResultException>(() => other.GetFineTuningClient().GetJobAsync(job.JobId))).Status);
            Assert.Equal(404, (await Assert.ThrowsAsync<ClientResultException>(() => other.GetOpenAIFileClient().GetFileAsync(file.Id))).Status);
            Assert.DoesNotContain(model, (await other.GetOpenAIModelClient().GetModelsAsync()).Value.Select(m => m.Id));
            Assert.Equal(404, (await Assert.ThrowsAsync<ClientResultException>(() => other.GetOpenAIModelClient().GetModelAsync(model))).Status);

            // 6. Continue training from the first epoch's checkpoint: the child job shows its lineage, and its model
            //    is named after the root base model, as OpenAI names a fine-tune of a fine-tune.
            var checkpoint = checkpoints.Single(c => c.StepNumber == 6).ModelId;
            var child = await fineTuning.FineTuneAsync(checkpoint, file.Id, waitUntilCompleted: false, new FineTuningOptions
            {
                Suffix = "child",
                TrainingMethod = FineTuningTrainingMethod.CreateSupervised(batchSize: 4, epochCount: 1),
            });
            var created = JsonNode.Parse(child.GetRawResponse().Content.ToString())!["lineage"]!;
            Assert.Equal((checkpoint, "checkpoint", job.JobId, TinyBaseModel.Id, 1),
                (created["parent_model"]!.GetValue<string>(), created["parent_kind"]!.GetValue<string>(), created["parent_job"]!.GetValue<string>(),
                    created["root_model"]!.GetValue<string>(), created["depth"]!.GetValue<int>()));
            await Eventually.UntilAsync(async () => { await child.UpdateStatusAsync(); return child; },
                j => j.HasCompleted, TimeSpan.FromSeconds(120), TimeSpan.FromMilliseconds(100));
            var childBody = JsonNode.Parse(child.GetRawResponse().Content.ToString())!;
            Assert.True(child.Status == FineTuningStatus.Succeeded, childBody.ToJsonString());
            Assert.Equal(checkpoint, childBody["model"]!.GetValue<string>());
            Assert.StartsWith($"ft:{TinyBaseModel.Id}:", childBody["fine_tuned_model"]!.GetValue<string>());
            Assert.Equal(TinyBaseModel.Id, childBody["lineage"]!["root_model"]!.GetValue<string>());
            // Another tenant cannot train on it: the same 404 as for a model that does not exist.
            var refused = await Assert.ThrowsAsync<ClientResultException>(() => other.GetFineTuningClient().FineTuneAsync(checkpoint, file.Id, waitUntilCompleted: false));
            Assert.Equal(404, refused.Status);

            // Wire timestamps are whole seconds; the row has the precise ones.
            await using (var db = await app.Services.GetRequiredService<IDbContextFactory<FineTuneDbContext>>().CreateDbContextAsync())
            {
                var row = await db.Jobs.AsNoTracking().SingleAsync(j => j.Id == job.JobId);
                output.WriteLine($"job created → claimed by the worker: {(row.StartedAt!.Value - row.CreatedAt).TotalMilliseconds:0} ms (includes the file check)");
            }
            output.WriteLine($"tokens/s at the last step: {last["tokens_per_second"]!.GetValue<double>():0}");
        }
        finally
        {
            Directory.Delete(cache, recursive: true);
        }
    }

    /// <summary>The SDK as a tenant configures it: only the base URL changes.</summary>
    private static OpenAIClient Sdk(ApiFactory app, string key) =>
        new(new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri(app.ServerAddress, "/v1") });

    private static async Task<string> CreateTenantKeyAsync(ApiFactory app, string name)
    {
        using var admin = new HttpClient { BaseAddress = app.ServerAddress };
        admin.DefaultRequestHeaders.Authorization = new("Bearer", AuthOptions.DevelopmentAdminKey);
        var response = await admin.PostAsJsonAsync("/v1/admin/tenants", new { name });
        response.EnsureSuccessStatusCode();
        return JsonNode.Parse(await response.Content.ReadAsStringAsync())!["api_key"]!.GetValue<string>();
    }

    private static async Task<List<T>> ToListAsync<T>(IAsyncEnumerable<T> items)
    {
        var list = new List<T>();
        await foreach (var item in items) list.Add(item);
        return list;
    }
#pragma warning restore OPENAI001
}
