using System.Net.Http.Json;
using System.Text.Json.Nodes;
using FineTuneService.Api.Auth;
using FineTuneService.Core.Models;
using FineTuneService.Service.Tests.Api;
using FineTuneService.Service.Tests.Infrastructure;
using FineTuneService.Worker.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;
using static FineTuneService.Service.Tests.Safety.SafetyGateApiTests;

namespace FineTuneService.Service.Tests.Safety;

/// <summary>
/// The TIES and PCB merges and the safety patch as tenants run them: jobs through the public API with the worker in
/// process, trained on a file with harmful rows, each post-step scored as its own stage. The tenant's policy lifts the
/// limits so every job ends with its model and scores (the gate's own rules are tested elsewhere).
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class MergeAndPatchApiTests(PostgresServer server, ITestOutputHelper output)
{
    [Fact]
    public async Task Ties_and_pcb_merges_run_as_jobs_and_are_scored_after_the_merge_while_a_lora_job_cannot_ask_for_them()
    {
        await RunAsync(async tenant =>
        {
            var file = await UploadAsync(tenant);
            var lora = await tenant.PostAsJsonAsync("/v1/fine_tuning/jobs", new
            {
                model = TinySafetyModel.Id, training_file = file,
                method = new { type = "supervised", supervised = new { adapter = new { type = "lora", rank = 4 } } },
                safety = new { strategy = new[] { "merge" }, @params = new { merge = new { method = "ties" } } },
            });
            var error = await lora.ErrorAsync(400);
            Assert.Equal("safety.params.merge.method", error["param"]!.GetValue<string>());

            foreach (var (method, param) in new[] { ("ties", (object)new { method = "ties", density = 0.3 }), ("pcb", new { method = "pcb", pcb_ratio = 0.2 }) })
            {
                var done = await TrainAsync(tenant, file, new { strategy = new[] { "merge" }, @params = new { merge = param } });
                var stages = done["safety"]!["scores"]!["stages"]!.AsArray();
                output.WriteLine($"{method}: {string.Join(", ", stages.Select(s => $"{s!["stage"]} HS {s["harmful_score"]} refusals {s["refusal_rate"]}"))}");
                Assert.Equal("succeeded", done["status"]!.GetValue<string>());
                Assert.Equal(["after_training", "after_merge"], stages.Select(s => s!["stage"]!.GetValue<string>()));
                Assert.Equal(method, done["safety"]!["params"]!["merge"]!["method"]!.GetValue<string>());
                Assert.Contains(await EventsAsync(tenant, done), m => m.StartsWith("Safety evaluation after merge", StringComparison.Ordinal));
            }
        });
    }

    [Fact]
    public async Task A_safety_patch_runs_as_a_job_and_is_scored_after_the_patch()
    {
        await RunAsync(async tenant =>
        {
            var file = await UploadAsync(tenant);
            var tooMany = await tenant.PostAsJsonAsync("/v1/fine_tuning/jobs", new
            {
                model = TinySafetyModel.Id, training_file = file,
                safety = new { strategy = new[] { "safety_patch" }, @params = new { safety_patch = new { examples = 9 } } },
            });
            Assert.Equal("safety.params.safety_patch.examples", (await tooMany.ErrorAsync(400))["param"]!.GetValue<string>());

            var done = await TrainAsync(tenant, file, new
            {
                strategy = new[] { "safety_patch" }, @params = new { safety_patch = new { examples = 4, steps = 10, learning_rate = 0.05 } },
            });
            var stages = done["safety"]!["scores"]!["stages"]!.AsArray();
            output.WriteLine(string.Join(", ", stages.Select(s => $"{s!["stage"]} HS {s["harmful_score"]} refusals {s["refusal_rate"]}")));
            Assert.Equal("succeeded", done["status"]!.GetValue<string>());
            Assert.Equal(["after_training", "after_safety_patch"], stages.Select(s => s!["stage"]!.GetValue<string>()));
            Assert.Equal(4, done["safety"]!["params"]!["safety_patch"]!["examples"]!.GetValue<int>());
            Assert.Contains(await EventsAsync(tenant, done), m => m.StartsWith("Safety evaluation after safety patch", StringComparison.Ordinal));
        });
    }

    private async Task RunAsync(Func<HttpClient, Task> test)
    {
        var cache = Directory.CreateTempSubdirectory("fts-merge-cache-").FullName;
        try
        {
            // Disposed inside the try, so the worker has stopped (and cleaned its job folders) before the cache goes.
            await using var api = new ApiFactory(await server.CreateDatabaseAsync(), settings: GateSettings(cache));
            await using var app = api.WithWebHostBuilder(web => web.ConfigureServices(services => services.AddFineTuneWorker()));
            await app.Services.GetRequiredService<BaseModelRegistry>().ImportAsync(TinySafetyModel.Id, TinySafetyModel.Folder, CancellationToken.None);
            var admin = Client(app, AuthOptions.DevelopmentAdminKey);
            var (tenantId, tenant) = await CreateTenantAsync(app, admin, "merge-and-patch");
            await PutPolicyAsync(admin, tenantId, new { max_harmful_score = 100, max_harmful_score_increase = 100, max_refusal_drop = 100 });
            await test(tenant);
        }
        finally
        {
            Directory.Delete(cache, recursive: true);
        }
    }

    private static async Task<string> UploadAsync(HttpClient tenant)
    {
        var file = await tenant.UploadValidatedAsync(MixedDataset());
        Assert.Equal("processed", file["status"]!.GetValue<string>());
        return file["id"]!.GetValue<string>();
    }

    private static async Task<JsonNode> TrainAsync(HttpClient tenant, string file, object safety)
    {
        var job = await tenant.PostJsonAsync("/v1/fine_tuning/jobs", new
        {
            model = TinySafetyModel.Id,
            training_file = file,
            seed = 7,
            hyperparameters = new { n_epochs = 4, batch_size = 8, learning_rate_multiplier = 5 },
            safety,
        });
        return await WaitAsync(tenant, job["id"]!.GetValue<string>());
    }

    private static async Task<List<string>> EventsAsync(HttpClient tenant, JsonNode job) =>
        (await tenant.GetJsonAsync($"/v1/fine_tuning/jobs/{job["id"]!.GetValue<string>()}/events?limit=100"))["data"]!.AsArray()
            .Select(e => e!["message"]!.GetValue<string>()).ToList();
}
