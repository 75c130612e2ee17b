using System.Net.Http.Json;
using System.Text.Json.Nodes;
using FineTuneService.Api.Auth;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Jobs;
using FineTuneService.Core.Models;
using FineTuneService.Service.Tests.Api;
using FineTuneService.Service.Tests.Infrastructure;
using FineTuneService.Worker.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace FineTuneService.Service.Tests.Worker;

/// <summary><c>POST /v1/fine_tuning/jobs/estimate</c> against the real job: the API host with the worker in process, real PostgreSQL, Hangfire and TorchSharp.</summary>
[Collection(PostgresCollection.Name)]
public sealed class JobEstimateTests(PostgresServer server)
{
    [Fact]
    public async Task The_estimate_counts_the_trained_tokens_of_the_real_job_exactly_and_then_uses_its_measured_rate()
    {
        var cache = Directory.CreateTempSubdirectory("fts-estimate-cache-").FullName;
        await using var app = new ApiFactory(await server.CreateDatabaseAsync(), settings: new TestWorkerSettings(cache)
        {
            // Short enough that some of the examples are cut: the estimate must cut them as the worker does.
            ["Worker:MaxSequenceLength"] = "48",
        }, configureServices: services => services.AddFineTuneWorker());
        app.UseKestrel(0);
        app.StartServer();
        try
        {
            await app.Services.GetRequiredService<BaseModelRegistry>().ImportAsync(TinyBaseModel.Id, TinyBaseModel.Folder, CancellationToken.None);
            using var admin = new HttpClient { BaseAddress = app.ServerAddress };
            admin.DefaultRequestHeaders.Authorization = new("Bearer", AuthOptions.DevelopmentAdminKey);
            var key = (await admin.PostJsonAsync("/v1/admin/tenants", new { name = "estimate" }))["api_key"]!.GetValue<string>();
            using var client = new HttpClient { BaseAddress = app.ServerAddress };
            client.DefaultRequestHeaders.Authorization = new("Bearer", key);

            var file = await client.UploadValidatedAsync(TinyBaseModel.Jsonl(10));
            var body = new
            {
                model = TinyBaseModel.Id,
                training_file = file["id"]!.GetValue<string>(),
                seed = 3,
                method = new { type = "supervised", supervised = new { hyperparameters = new { n_epochs = 3, batch_size = 4 } } },
            };

            var estimate = await client.PostJsonAsync("/v1/fine_tuning/jobs/estimate", body);
            Assert.Equal("fine_tuning.job.estimate", estimate["object"]!.GetValue<string>());
            Assert.Equal("default", estimate["estimate_basis"]!.GetValue<string>());
            Assert.Null(estimate["measured_device_kind"]);
            // The in-process worker's device server is the pool: one cpu slot.
            Assert.Equal(["cpu"], estimate["pool_device_kinds"]!.AsArray().Select(k => k!.GetValue<string>()));
            Assert.Equal(10, estimate["training_examples"]!.GetValue<int>());
            Assert.True(estimate["steps"]!.GetValue<int>() == 9, estimate.ToJsonString()); // 10 rows in batches of 4: 3 steps an epoch, 3 epochs
            Assert.Equal(3, estimate["hyperparameters"]!["n_epochs"]!.GetValue<int>());
            Assert.Equal(1, estimate["queue_position"]!.GetValue<int>());
            Assert.True(estimate["estimated_duration_seconds"]!.GetValue<double>() > 0);
            Assert.Empty((await client.GetJsonAsync("/v1/fine_tuning/jobs"))["data"]!.AsArray());

            var job = await client.PostJsonAsync("/v1/fine_tuning/jobs", body);
            var id = job["id"]!.GetValue<string>();
            var done = await Eventually.UntilAsync(() => client.GetJsonAsync($"/v1/fine_tuning/jobs/{id}"),
                j => j["status"]!.GetValue<string>() is "succeeded" or "failed" or "cancelled", TimeSpan.FromSeconds(120), TimeSpan.FromMilliseconds(100));
            Assert.True(done["status"]!.GetValue<string>() == "succeeded", done.ToJsonString());
            Assert.Equal(estimate["trained_tokens"]!.GetValue<long>(), done["trained_tokens"]!.GetValue<long>());

            Assert.Equal("cpu", (await app.WithDbAsync(db => db.Jobs.SingleAsync(j => j.Id == id))).DeviceKind);

            // A job that finished on a cuda device (recorded directly: no such device here) is no basis while no cuda worker is live.
            await app.WithDbAsync(async db =>
            {
                var started = DateTime.UtcNow.AddHours(-2);
                var slow = new FineTuningJob
                {
                    Id = Ids.Job(), TenantId = (await db.Jobs.SingleAsync(j => j.Id == id)).TenantId, Model = TinyBaseModel.Id, RootModel = TinyBaseModel.Id,
                    TrainingFileId = file["id"]!.GetValue<string>(), Status = JobStatus.Succeeded, DeviceKind = "cuda", TrainedTokens = 10,
                    CreatedAt = started, StartedAt = started, FinishedAt = started.AddHours(1),
                };
                db.Jobs.Add(slow);
                db.JobEvents.Add(JobEvents.Metrics(slow.Id, "Step 1/1", new JsonObject { ["step"] = 1 }, started.AddMinutes(59)));
                return await db.SaveChangesAsync();
            });

            // The finished job is now the record for its base model on the pool's device kind.
            var again = await client.PostJsonAsync("/v1/fine_tuning/jobs/estimate", body);
            Assert.Equal("measured", again["estimate_basis"]!.GetValue<string>());
            Assert.Equal(TinyBaseModel.Id, again["measured_base_model"]!.GetValue<string>());
            Assert.Equal("cpu", again["measured_device_kind"]!.GetValue<string>());
            Assert.Equal(1, again["measured_jobs"]!.GetValue<int>());
            Assert.Equal(estimate["trained_tokens"]!.GetValue<long>(), again["trained_tokens"]!.GetValue<long>());
            Assert.True(again["estimated_duration_seconds"]!.GetValue<double>() < 600, again.ToJsonString()); // not the cuda job's hour for 10 tokens
        }
        finally
        {
            Directory.Delete(cache, recursive: true);
        }
    }
}
