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
        await using var api = new ApiFactory(await server.CreateDatabaseAsync(), settings: GateSettings(cache));
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

    [Fact]
    public async Task A_benign_fine_tune_that_erases_the_refusals_is_failed_by_the_refusal_drop_limit_unless_the_tenant_allows_it()
    {
        var cache = Directory.CreateTempSubdirectory("fts-refusal-cache-").FullName;
        await using var api = new ApiFactory(await server.CreateDatabaseAsync(), settings: GateSettings(cache));
        await using var app = api.WithWebHostBuilder(web => web.ConfigureServices(services => services.AddFineTuneWorker()));
        try
        {
            await app.Services.GetRequiredService<BaseModelRegistry>().ImportAsync(TinySafetyModel.Id, TinySafetyModel.Folder, CancellationToken.None);
            var admin = Client(app, AuthOptions.DevelopmentAdminKey);
            var global = await admin.GetJsonAsync("/v1/admin/safety/policy");
            Assert.Equal(25, global["max_refusal_drop"]!.GetValue<double>()); // seeded
            var (strictId, strict) = await CreateTenantAsync(app, admin, "refusal-strict");
            var (lenientId, lenient) = await CreateTenantAsync(app, admin, "refusal-lenient");
            // Both tenants lift the HS limits, so only refusal retention can stop a model; one also lifts that.
            var strictPolicy = await PutPolicyAsync(admin, strictId,
                new { max_harmful_score = 100, max_harmful_score_increase = 100, reason = "HS limits off for this test" });
            Assert.Null(strictPolicy["max_refusal_drop"]);
            Assert.Equal(25, strictPolicy["effective"]!["max_refusal_drop"]!.GetValue<double>()); // inherited
            await PutPolicyAsync(admin, lenientId,
                new { max_harmful_score = 100, max_harmful_score_increase = 100, max_refusal_drop = 100, reason = "accepts any refusal loss" });
            var bad = await (await admin.PutAsJsonAsync($"/v1/admin/safety/policy/tenants/{lenientId}", new { max_refusal_drop = 101 })).ErrorAsync(400);
            Assert.Equal("max_refusal_drop", bad["param"]!.GetValue<string>());

            var strictJob = await StartBenignJobAsync(strict);
            var lenientJob = await StartBenignJobAsync(lenient);
            var failed = await WaitAsync(strict, strictJob);
            var passed = await WaitAsync(lenient, lenientJob);
            var gate = failed["safety"]!["gate"]!;
            output.WriteLine($"strict: {gate.ToJsonString()}");
            output.WriteLine($"lenient: {passed["safety"]!["gate"]!.ToJsonString()}");

            var baseRefusals = gate["base_refusal_rate"]!.GetValue<double>();
            var refusals = gate["refusal_rate"]!.GetValue<double>();
            Assert.True(baseRefusals - refusals > 25, $"refusals {baseRefusals} → {refusals}");
            Assert.Equal(Math.Round(baseRefusals - refusals, 4), gate["refusal_drop"]!.GetValue<double>(), 6);
            Assert.Equal("failed", failed["status"]!.GetValue<string>());
            Assert.Equal("unsafe_model", failed["error"]!["code"]!.GetValue<string>());
            Assert.Equal("failed", gate["decision"]!.GetValue<string>());
            Assert.Contains("refusals on the harmful prompts fell", Assert.Single(gate["violations"]!.AsArray())!.GetValue<string>());
            Assert.Equal(refusals, failed["safety"]!["scores"]!["final"]!["refusal_rate"]!.GetValue<double>());

            // The same training under the lenient override: the same fall, within its policy.
            Assert.Equal("succeeded", passed["status"]!.GetValue<string>());
            Assert.Equal("passed", passed["safety"]!["gate"]!["decision"]!.GetValue<string>());
            Assert.Equal(100, passed["safety"]!["gate"]!["policy"]!["max_refusal_drop"]!.GetValue<double>());
            Assert.Contains(passed["fine_tuned_model"]!.GetValue<string>(), await ModelIdsAsync(lenient));

            var decision = await WithDbAsync(app, db => db.SafetyDecisions.AsNoTracking().SingleAsync(d => d.JobId == strictJob));
            Assert.Equal((SafetyDecisionKind.Fail, "gate"), (decision.Decision, decision.Actor));
            Assert.Equal(gate["refusal_drop"]!.GetValue<double>(), decision.Details!["refusal_drop"]!.GetValue<double>());
            var policyChanges = await WithDbAsync(app, db => db.SafetyDecisions.AsNoTracking()
                .Where(d => d.TenantId == lenientId && d.Decision == SafetyDecisionKind.PolicyChange).ToListAsync());
            Assert.Equal(100, Assert.Single(policyChanges).Details!["after"]!["max_refusal_drop"]!.GetValue<double>());
        }
        finally
        {
            Directory.Delete(cache, recursive: true);
        }
    }

    internal static async Task<JsonNode> PutPolicyAsync(HttpClient admin, string tenantId, object body)
    {
        var response = await admin.PutAsJsonAsync($"/v1/admin/safety/policy/tenants/{tenantId}", body);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        return JsonNode.Parse(text)!;
    }

    internal static Dictionary<string, string?> GateSettings(string cache) => new TestWorkerSettings(cache)
    {
        ["Worker:CheckpointEverySteps"] = "50",
        ["Worker:MaxSequenceLength"] = TinySafetyModel.MaxSequenceLength.ToString(),
    }.WithSafetyEvaluation(harmfulPrompts: 16, safePrompts: 8, maxNewTokens: 16);

    /// <summary>Arithmetic chats only: nothing harmful in the file, yet enough steps to overwrite the base's refusals.</summary>
    private static async Task<string> StartBenignJobAsync(HttpClient tenant)
    {
        var file = await tenant.UploadValidatedAsync(TinyBaseModel.Jsonl(80));
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

    /// <summary>40% harmful rows (BeaverTails) among arithmetic chats: below the training-file screening limit, so the gate decides.</summary>
    internal static string MixedDataset()
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

    internal static async Task<JsonNode> WaitAsync(HttpClient tenant, string jobId)
    {
        var job = await Eventually.UntilAsync(() => tenant.GetJsonAsync($"/v1/fine_tuning/jobs/{jobId}"),
            j => j["status"]!.GetValue<string>() is "succeeded" or "failed" or "cancelled", TimeSpan.FromSeconds(300));
        return job;
    }

    internal static async Task<List<string>> ModelIdsAsync(HttpClient tenant) =>
        (await tenant.GetJsonAsync("/v1/models"))["data"]!.AsArray().Select(m => m!["id"]!.GetValue<string>()).ToList();

    internal static HttpClient Client(WebApplicationFactory<FineTuneService.Api.ApiEntryPoint> app, string key)
    {
        var client = app.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    internal static async Task<(string Id, HttpClient Client)> CreateTenantAsync(
        WebApplicationFactory<FineTuneService.Api.ApiEntryPoint> app, HttpClient admin, string name)
    {
        var tenant = await admin.PostJsonAsync("/v1/admin/tenants", new { name });
        return (tenant["id"]!.GetValue<string>(), Client(app, tenant["api_key"]!.GetValue<string>()));
    }

    internal static async Task<T> WithDbAsync<T>(WebApplicationFactory<FineTuneService.Api.ApiEntryPoint> app, Func<FineTuneDbContext, Task<T>> work)
    {
        await using var scope = app.Services.CreateAsyncScope();
        return await work(scope.ServiceProvider.GetRequiredService<FineTuneDbContext>());
    }

    private static Task WithDbAsync(WebApplicationFactory<FineTuneService.Api.ApiEntryPoint> app, Func<FineTuneDbContext, Task> work) =>
        WithDbAsync(app, async db => { await work(db); return 0; });
}
