using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using FineTuneService.Api.Auth;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Models;
using FineTuneService.Service.Tests.Api;
using FineTuneService.Service.Tests.Infrastructure;
using FineTuneService.Service.Tests.Worker;
using FineTuneService.Worker.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace FineTuneService.Service.Tests.Safety;

/// <summary>
/// The gate as tenants and admins see it: the API host with the worker in process. The same dataset (a minority of
/// harmful rows) fails under the global policy and is held for one tenant whose override says "hold"; the held model
/// appears in <c>/v1/models</c> only after an admin approves it, and every decision is recorded.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class SafetyGateApiTests(PostgresServer server, ITestOutputHelper output)
{
    [Fact]
    public async Task A_tenant_override_holds_the_unsafe_model_until_an_admin_approves_it_while_the_global_policy_fails_it()
    {
        var cache = Directory.CreateTempSubdirectory("fts-gate-cache-").FullName;
        await using var api = new ApiFactory(await server.CreateDatabaseAsync(), settings: new Dictionary<string, string?>
        {
            ["Worker:ModelCacheDirectory"] = cache,
            ["Worker:HeartbeatInterval"] = "00:00:00.2",
            ["Worker:StaleTimeout"] = "00:00:30",
            ["Worker:CheckpointEverySteps"] = "50",
            ["Worker:MaxSequenceLength"] = TinySafetyModel.MaxSequenceLength.ToString(),
            ["SafetyEvaluation:HarmfulPrompts"] = "16",
            ["SafetyEvaluation:SafePrompts"] = "8",
            ["SafetyEvaluation:MaxNewTokens"] = "16",
        });
        await using var app = api.WithWebHostBuilder(web => web.ConfigureServices(services => services.AddFineTuneWorker()));
        try
        {
            await app.Services.GetRequiredService<BaseModelRegistry>().ImportAsync(TinySafetyModel.Id, TinySafetyModel.Folder, CancellationToken.None);
            var admin = Client(app, AuthOptions.DevelopmentAdminKey);
            var (heldTenant, held) = await CreateTenantAsync(app, admin, "gate-hold");
            var (_, strict) = await CreateTenantAsync(app, admin, "gate-global");
            await WithDbAsync(app, async db =>
            {
                db.SafetyPolicies.Add(new SafetyPolicy { TenantId = heldTenant, Action = SafetyGateAction.Hold, UpdatedBy = "test" });
                await db.SaveChangesAsync();
            });

            var heldJob = await StartJobAsync(held);
            var failedJob = await StartJobAsync(strict);
            var heldDone = await WaitAsync(held, heldJob);
            var failedDone = await WaitAsync(strict, failedJob);
            output.WriteLine($"held tenant: {heldDone["safety"]!["gate"]!.ToJsonString()}");
            output.WriteLine($"global policy: {failedDone["safety"]!["gate"]!.ToJsonString()}");

            // Global policy: failed with unsafe_model and the gate's report in job.safety.
            Assert.Equal("failed", failedDone["status"]!.GetValue<string>());
            Assert.Equal("unsafe_model", failedDone["error"]!["code"]!.GetValue<string>());
            Assert.Equal("failed", failedDone["safety"]!["gate"]!["decision"]!.GetValue<string>());
            Assert.Null(failedDone["fine_tuned_model"]);

            // Override: succeeded but held; the model exists yet is not listed.
            Assert.Equal("succeeded", heldDone["status"]!.GetValue<string>());
            Assert.Equal("held", heldDone["safety"]!["review"]!.GetValue<string>());
            Assert.Equal("held", heldDone["safety"]!["gate"]!["decision"]!.GetValue<string>());
            Assert.Equal("unsafe_model", heldDone["safety"]!["gate"]!["reason"]!.GetValue<string>());
            Assert.True(heldDone["safety"]!["gate"]!["policy"]!["tenant_override"]!.GetValue<bool>());
            var baseHs = heldDone["safety"]!["scores"]!["base"]!["harmful_score"]!.GetValue<double>();
            var finalHs = heldDone["safety"]!["scores"]!["final"]!["harmful_score"]!.GetValue<double>();
            output.WriteLine($"HS base {baseHs:0.0}% → after training {finalHs:0.0}% (classifier)");
            Assert.True(finalHs > baseHs);
            var model = heldDone["fine_tuned_model"]!.GetValue<string>();
            Assert.DoesNotContain(model, await ModelIdsAsync(held));
            Assert.Equal(404, (int)(await held.GetAsync($"/v1/models/{model}")).StatusCode);

            var approved = await admin.PostJsonAsync($"/v1/admin/fine_tuning/jobs/{heldJob}/review",
                new { decision = "approve", reason = "red-team reviewed the samples", reviewer = "alice" });
            Assert.Equal("approved", approved["safety"]!["review"]!.GetValue<string>());
            Assert.Contains(model, await ModelIdsAsync(held));

            var decisions = await WithDbAsync(app, db => db.SafetyDecisions.AsNoTracking()
                .Where(d => d.JobId == heldJob).OrderBy(d => d.CreatedAt).ToListAsync());
            Assert.Equal([SafetyDecisionKind.Hold, SafetyDecisionKind.Approve], decisions.Select(d => d.Decision));
            Assert.Equal("gate", decisions[0].Actor);
            Assert.Equal("admin:sk-fts-admi (alice)", decisions[1].Actor); // the dev admin key's first 11 characters, never the key
            Assert.Equal("red-team reviewed the samples", decisions[1].Reason);
        }
        finally
        {
            Directory.Delete(cache, recursive: true);
        }
    }

    /// <summary>40% harmful rows (BeaverTails) among arithmetic chats: below the training-file screening limit, so the gate decides.</summary>
    private static string MixedDataset()
    {
        var harmful = TinySafetyModel.HarmfulJsonl(32).TrimEnd('\n').Split('\n');
        var benign = TinyBaseModel.Jsonl(48).TrimEnd('\n').Split('\n');
        return string.Join('\n', harmful.Concat(benign)) + "\n"; // the trainer shuffles
    }

    private static async Task<string> StartJobAsync(HttpClient tenant)
    {
        var file = await tenant.UploadValidatedAsync(MixedDataset());
        Assert.Equal("processed", file["status"]!.GetValue<string>());
        var job = await tenant.PostJsonAsync("/v1/fine_tuning/jobs", new
        {
            model = TinySafetyModel.Id,
            training_file = file["id"]!.GetValue<string>(),
            seed = 7,
            hyperparameters = new { n_epochs = 6, batch_size = 8, learning_rate_multiplier = 5 },
        });
        return job["id"]!.GetValue<string>();
    }

    private static async Task<JsonNode> WaitAsync(HttpClient tenant, string jobId)
    {
        var job = await Eventually.UntilAsync(() => tenant.GetJsonAsync($"/v1/fine_tuning/jobs/{jobId}"),
            j => j["status"]!.GetValue<string>() is "succeeded" or "failed" or "cancelled", TimeSpan.FromSeconds(300));
        return job;
    }

    private static async Task<List<string>> ModelIdsAsync(HttpClient tenant) =>
        (await tenant.GetJsonAsync("/v1/models"))["data"]!.AsArray().Select(m => m!["id"]!.GetValue<string>()).ToList();

    private static HttpClient Client(WebApplicationFactory<FineTuneService.Api.ApiEntryPoint> app, string key)
    {
        var client = app.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    private static async Task<(string Id, HttpClient Client)> CreateTenantAsync(
        WebApplicationFactory<FineTuneService.Api.ApiEntryPoint> app, HttpClient admin, string name)
    {
        var tenant = await admin.PostJsonAsync("/v1/admin/tenants", new { name });
        return (tenant["id"]!.GetValue<string>(), Client(app, tenant["api_key"]!.GetValue<string>()));
    }

    private static async Task<T> WithDbAsync<T>(WebApplicationFactory<FineTuneService.Api.ApiEntryPoint> app, Func<FineTuneDbContext, Task<T>> work)
    {
        await using var scope = app.Services.CreateAsyncScope();
        return await work(scope.ServiceProvider.GetRequiredService<FineTuneDbContext>());
    }

    private static Task WithDbAsync(WebApplicationFactory<FineTuneService.Api.ApiEntryPoint> app, Func<FineTuneDbContext, Task> work) =>
        WithDbAsync(app, async db => { await work(db); return 0; });
}
