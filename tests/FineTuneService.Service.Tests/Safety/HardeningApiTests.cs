using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Jobs;
using FineTuneService.Service.Tests.Api;
using FineTuneService.Service.Tests.Infrastructure;
using FineTuneService.Service.Tests.Worker;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;
using static FineTuneService.Service.Tests.Safety.SafetyGateApiTests;

namespace FineTuneService.Service.Tests.Safety;

/// <summary>
/// <c>POST /v1/admin/models/{base}/harden</c> end to end: the API checks the request through the hardening registry,
/// a worker's device server runs Booster on the tiny base model, registers the result as a base model with its
/// lineage and scores it once; tenants list it and fine-tune it. Also: a base model imported as it was published is
/// scored at registration, before any job.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class HardeningApiTests(PostgresServer server, SafetyServiceHost host, ITestOutputHelper output) : IClassFixture<SafetyServiceHost>
{
    private const string Hardened = TinyBaseModel.Id + "-booster";

    [Fact]
    public async Task A_hardened_base_model_is_registered_with_its_lineage_and_base_scores_and_a_tenant_fine_tunes_it()
    {
        var api = await host.GetAsync(server);
        var admin = api.AdminClient();
        var (tenantId, _, tenant) = await api.CreateTenantAsync("hardening-tenant");

        // The imported base is scored at registration: its scores are listed before any job ran on it.
        var plain = await Eventually.UntilAsync(() => tenant.GetJsonAsync($"/v1/models/{TinyBaseModel.Id}"),
            m => m["safety_scores"] is not null, TimeSpan.FromSeconds(120), TimeSpan.FromMilliseconds(200));
        Assert.Null(plain["lineage"]);
        Assert.True(plain["safety_scores"]!["judges"]!.AsObject().ContainsKey("classifier"), plain.ToJsonString());

        var created = await admin.PostJsonAsync($"/v1/admin/models/{TinyBaseModel.Id}/harden", new
        {
            method = "booster",
            // A random tiny base has no answers of its own to align on: no refusals, and no usable benign answers.
            @params = new { steps = 4, batch_size = 2, alignment_answers = "shipped", benign_share = 0 },
        });
        var runId = created["id"]!.GetValue<string>();
        Assert.Equal(("hardening_run", "queued", Hardened), (created["object"]!.GetValue<string>(), created["status"]!.GetValue<string>(),
            created["hardened_model"]!.GetValue<string>()));
        Assert.Equal(5.0, created["params"]!["lambda"]!.GetValue<double>()); // the paper's default, stored with the run
        Assert.Equal(4, created["params"]!["steps"]!.GetValue<int>());

        var done = await Eventually.UntilAsync(() => admin.GetJsonAsync($"/v1/admin/hardening_runs/{runId}"),
            r => r["status"]!.GetValue<string>() is "succeeded" or "failed", TimeSpan.FromSeconds(300), TimeSpan.FromMilliseconds(250));
        output.WriteLine(done.ToJsonString());
        Assert.True(done["status"]!.GetValue<string>() == "succeeded", done.ToJsonString());
        Assert.Equal(4, done["report"]!["hardening"]!["steps"]!.GetValue<int>());
        Assert.NotNull(done["report"]!["base_scores"]!["harmful_score"]);

        var events = (await admin.GetJsonAsync($"/v1/admin/hardening_runs/{runId}/events?limit=100"))["data"]!.AsArray();
        output.WriteLine(string.Join("\n", events.Select(e => e!["message"]!.GetValue<string>())));
        var lastStep = events.Single(e => e!["message"]!.GetValue<string>().StartsWith("Step 4/4:", StringComparison.Ordinal))!;
        Assert.Equal(4, lastStep["data"]!["step"]!.GetValue<int>());
        Assert.True(double.IsFinite(lastStep["data"]!["alignment_loss"]!.GetValue<double>()));
        Assert.Contains(events, e => e!["message"]!.GetValue<string>().StartsWith($"Registered base model {Hardened}", StringComparison.Ordinal));
        Assert.Contains(events, e => e!["message"]!.GetValue<string>().StartsWith($"Base scores of {Hardened}", StringComparison.Ordinal));
        Assert.Contains(runId, (await admin.GetJsonAsync("/v1/admin/hardening_runs"))["data"]!.AsArray().Select(r => r!["id"]!.GetValue<string>()));

        // Every tenant lists it, with its lineage and the scores measured once at registration.
        var listed = (await tenant.GetJsonAsync("/v1/models"))["data"]!.AsArray().Single(m => m!["id"]!.GetValue<string>() == Hardened)!;
        Assert.Equal(("system", TinyBaseModel.Id, "booster"), (listed["owned_by"]!.GetValue<string>(),
            listed["lineage"]!["hardened_from"]!.GetValue<string>(), listed["lineage"]!["method"]!.GetValue<string>()));
        Assert.Equal(4, listed["lineage"]!["params"]!["steps"]!.GetValue<int>());
        var scores = listed["safety_scores"]!;
        Assert.Equal(done["report"]!["base_scores"]!["harmful_score"]!.GetValue<double>(), scores["harmful_score"]!.GetValue<double>());
        Assert.InRange(scores["refusal_rate"]!.GetValue<double>(), 0, 100);
        Assert.InRange(scores["over_refusal_rate"]!.GetValue<double>(), 0, 100);

        // A second run for the same model is refused: the name is taken.
        var again = await admin.PostAsJsonAsync($"/v1/admin/models/{TinyBaseModel.Id}/harden", new { method = "booster" });
        var taken = await again.ErrorAsync(400);
        Assert.Equal(("suffix", "model_exists"), (taken["param"]!.GetValue<string>(), taken["code"]!.GetValue<string>()));

        // A tenant fine-tunes the hardened model; its job's base stage reuses the registration scores.
        await PutPolicyAsync(admin, tenantId, new { max_harmful_score = 100, max_harmful_score_increase = 100, max_refusal_drop = 100 });
        var file = await tenant.UploadValidatedAsync(Api.Datasets.ValidChat(12));
        var job = await tenant.PostJsonAsync("/v1/fine_tuning/jobs", new
        {
            model = Hardened, training_file = file["id"]!.GetValue<string>(), hyperparameters = new { n_epochs = 1, batch_size = 4 },
        });
        var trained = await WaitAsync(tenant, job["id"]!.GetValue<string>());
        Assert.True(trained["status"]!.GetValue<string>() == "succeeded", trained.ToJsonString());
        Assert.StartsWith($"ft:{Hardened}:", trained["fine_tuned_model"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.True(trained["safety"]!["scores"]!["base"]!["cached"]!.GetValue<bool>());
        Assert.Equal(1, await api.WithDbAsync(db => db.BaseModelSafetyScores.CountAsync(s => s.BaseModelId == Hardened)));

        // At least once: a delivery of a run whose model it registered already (a worker that died after the import)
        // only finishes it, with the same weights; a delivery of a finished run does nothing.
        var sha = await api.WithDbAsync(db => db.BaseModels.Where(m => m.Id == Hardened).Select(m => m.ArtifactSha256).SingleAsync());
        await api.WithDbAsync(db => db.HardeningRuns.Where(r => r.Id == runId)
            .ExecuteUpdateAsync(set => set.SetProperty(r => r.Status, HardeningRunStatus.Queued).SetProperty(r => r.Report, (JsonObject?)null)));
        var scheduler = api.Services.GetRequiredService<IJobScheduler>();
        scheduler.EnqueueHardening(runId);
        var redone = await Eventually.UntilAsync(() => admin.GetJsonAsync($"/v1/admin/hardening_runs/{runId}"),
            r => r["status"]!.GetValue<string>() is "succeeded" or "failed", TimeSpan.FromSeconds(120), TimeSpan.FromMilliseconds(250));
        Assert.True(redone["status"]!.GetValue<string>() == "succeeded", redone.ToJsonString());
        Assert.Equal(sha, redone["report"]!["artifact_sha256"]!.GetValue<string>());
        var messages = (await admin.GetJsonAsync($"/v1/admin/hardening_runs/{runId}/events?limit=100"))["data"]!.AsArray()
            .Select(e => e!["message"]!.GetValue<string>()).ToList();
        Assert.Contains(messages, m => m.Contains("was registered by this run already", StringComparison.Ordinal));
        Assert.Single(messages, m => m.StartsWith("Step 4/4:", StringComparison.Ordinal)); // not hardened again
        Assert.Equal(sha, await api.WithDbAsync(db => db.BaseModels.Where(m => m.Id == Hardened).Select(m => m.ArtifactSha256).SingleAsync()));
    }

    [Theory]
    [InlineData("{}", 400, "method")]
    [InlineData("""{"method": "vaccine"}""", 400, "method")]
    [InlineData("""{"method": 5}""", 400, "method")]
    [InlineData("""{"method": "booster", "params": {"lambda": -1}}""", 400, "params.lambda")]
    [InlineData("""{"method": "booster", "params": {"steps": "many"}}""", 400, "params.steps")]
    [InlineData("""{"method": "booster", "params": {"rho": 1}}""", 400, "params.rho")]
    [InlineData("""{"method": "booster", "params": {"alignment_answers": "mine"}}""", 400, "params.alignment_answers")]
    [InlineData("""{"method": "booster", "params": {"benign_share": 1}}""", 400, "params.benign_share")]
    [InlineData("""{"method": "booster", "params": {"benign_share": 0.5, "batch_size": 1}}""", 400, "params.benign_share")]
    [InlineData("""{"method": "booster", "params": [1]}""", 400, "params")]
    [InlineData("""{"method": "booster", "suffix": "Not Valid"}""", 400, "suffix")]
    [InlineData("""{"method": "booster", "suffix": "booster-with-a-suffix-far-too-long-for-a-model-id"}""", 400, "suffix")]
    public async Task Bad_bodies_are_refused_with_their_param_and_create_no_run(string body, int status, string param)
    {
        var api = await host.GetAsync(server);
        var admin = api.AdminClient();
        var response = await admin.PostAsync($"/v1/admin/models/{TinyBaseModel.Id}/harden", new StringContent(body, Encoding.UTF8, "application/json"));
        var error = await response.ErrorAsync(status);
        Assert.Equal(param, error["param"]?.GetValue<string>());
        Assert.Equal(0, await api.WithDbAsync(db => db.HardeningRuns.CountAsync(r => r.Status != HardeningRunStatus.Succeeded)));
    }

    [Fact]
    public async Task An_unknown_base_model_is_a_404_and_a_tenant_key_may_not_harden()
    {
        var api = await host.GetAsync(server);
        var missing = await api.AdminClient().PostAsJsonAsync("/v1/admin/models/no-such-model/harden", new { method = "booster" });
        Assert.Equal("model_not_found", (await missing.ErrorAsync(404))["code"]!.GetValue<string>());
        var (_, _, tenant) = await api.CreateTenantAsync("hardening-not-admin");
        var forbidden = await tenant.PostAsJsonAsync($"/v1/admin/models/{TinyBaseModel.Id}/harden", new { method = "booster" });
        Assert.False(forbidden.IsSuccessStatusCode);
        await (await api.AdminClient().GetAsync("/v1/admin/hardening_runs/hardrun-none")).ErrorAsync(404);
    }

    [Fact]
    public async Task Swagger_documents_each_methods_params_from_its_parameters_record()
    {
        var api = await host.GetAsync(server);
        var swagger = JsonNode.Parse(await api.CreateClient().GetStringAsync("/swagger/v1/swagger.json"))!;
        var request = swagger["components"]!["schemas"]!["HardenModelRequest"]!["properties"]!;

        Assert.Equal(["booster"], request["method"]!["enum"]!.AsArray().Select(m => m!.GetValue<string>()));
        var booster = request["params"]!["oneOf"]!.AsArray().Single(m => m!["title"]!.GetValue<string>() == "booster")!["properties"]!;
        var method = FineTuneService.Contracts.Safety.Hardening.HardeningMethods.Registry.Find("booster")!;
        Assert.Equal(method.Fields.Select(f => f.Name), booster.AsObject().Select(p => p.Key));
        var share = method.Fields.Single(f => f.Name == "benign_share");
        Assert.Equal(share.Description, booster["benign_share"]!["description"]!.GetValue<string>());
        Assert.Equal(share.Default, booster["benign_share"]!["default"]!.GetValue<double>());
    }
}
