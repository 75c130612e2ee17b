using System.Net.Http.Json;
using System.Text.Json.Nodes;
using FineTuneService.Contracts.Judges;
using FineTuneService.Contracts.Safety;
using FineTuneService.Core.Artifacts;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Jobs;
using FineTuneService.Service.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace FineTuneService.Service.Tests.Api;

[Collection(PostgresCollection.Name)]
public sealed class FineTuningJobsApiTests(PostgresServer server, SharedApi shared) : IClassFixture<SharedApi>, IAsyncLifetime
{
    private ApiFactory _api = null!;

    public async Task InitializeAsync() => _api = await shared.GetAsync(server);
    public Task DisposeAsync() => Task.CompletedTask;

    private async Task<(HttpClient Client, string FileId)> TenantWithFileAsync(string name)
    {
        var (_, _, client) = await _api.CreateTenantAsync(name);
        var file = await client.UploadValidatedAsync(Datasets.ValidChat());
        Assert.Equal("processed", file["status"]!.GetValue<string>());
        return (client, file["id"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_job_on_a_processed_file_is_queued_with_the_openai_shape()
    {
        var (client, fileId) = await TenantWithFileAsync("shape");
        var job = await client.PostJsonAsync("/v1/fine_tuning/jobs", new
        {
            model = ApiFactory.BaseModelId,
            training_file = fileId,
            suffix = "my-bot",
            seed = 42,
            metadata = new { team = "search" },
            method = new { type = "supervised", supervised = new { hyperparameters = new { n_epochs = 2, batch_size = "auto" }, adapter = new { type = "lora", rank = 4 } } },
            safety = new { strategy = new[] { "antidote" }, @params = new { antidote = new { dense_ratio = 0.2 } } },
        });

        Assert.StartsWith("ftjob-", job["id"]!.GetValue<string>());
        Assert.Equal("fine_tuning.job", job["object"]!.GetValue<string>());
        Assert.Equal("queued", job["status"]!.GetValue<string>());
        // Queued behind every job queued before it on this pool (no worker runs here), with the start and finish that follow.
        var position = job["queue_position"]!.GetValue<int>();
        var queuedBefore = await _api.WithDbAsync(db => JobQueue.Queued(db).CountAsync(j => j.Id != job["id"]!.GetValue<string>()));
        Assert.Equal(queuedBefore + 1, position);
        Assert.True(job["estimated_finish"]!.GetValue<long>() > job["estimated_start"]!.GetValue<long>());
        Assert.Null(job["error"]);
        Assert.True(job.AsObject().ContainsKey("error"));
        Assert.Equal(2, job["hyperparameters"]!["n_epochs"]!.GetValue<long>());
        Assert.Equal("auto", job["hyperparameters"]!["batch_size"]!.GetValue<string>());
        Assert.Equal("auto", job["hyperparameters"]!["learning_rate_multiplier"]!.GetValue<string>());
        Assert.Equal(2, job["method"]!["supervised"]!["hyperparameters"]!["n_epochs"]!.GetValue<long>());
        var adapter = job["method"]!["supervised"]!["adapter"]!;
        Assert.Equal(4, adapter["rank"]!.GetValue<long>());
        Assert.Equal(8.0, adapter["alpha"]!.GetValue<double>()); // default alpha = 2 * rank
        Assert.Equal(["q_proj", "v_proj"], adapter["target_modules"]!.AsArray().Select(t => t!.GetValue<string>()));
        Assert.Equal(42, job["seed"]!.GetValue<long>());
        Assert.Equal("search", job["metadata"]!["team"]!.GetValue<string>());
        Assert.Equal("my-bot", job["user_provided_suffix"]!.GetValue<string>());
        Assert.Empty(job["integrations"]!.AsArray());
        Assert.Empty(job["result_files"]!.AsArray());
        Assert.Equal("antidote", job["safety"]!["strategy"]![0]!.GetValue<string>());
        // The plan is echoed with every parameter, defaults filled in.
        Assert.Equal(0.2, job["safety"]!["params"]!["antidote"]!["dense_ratio"]!.GetValue<double>());
        Assert.Equal(16, job["safety"]!["params"]!["antidote"]!["calibration_samples"]!.GetValue<long>());
        Assert.Equal("not_required", job["safety"]!["review"]!.GetValue<string>());

        var id = job["id"]!.GetValue<string>();
        Assert.Equal(id, (await client.GetJsonAsync($"/v1/fine_tuning/jobs/{id}"))["id"]!.GetValue<string>());
        var list = await client.GetJsonAsync("/v1/fine_tuning/jobs");
        Assert.Equal(id, list["data"]![0]!["id"]!.GetValue<string>());
        Assert.False(list["has_more"]!.GetValue<bool>());

        // Queued for a GPU worker through Hangfire, by contract.
        var monitor = _api.Services.GetRequiredService<Hangfire.JobStorage>().GetMonitoringApi();
        Assert.Contains(monitor.EnqueuedJobs(Queues.Gpu, 0, 1000), j => j.Value.Job.Args[0] as string == id);
    }

    [Theory]
    [InlineData("""{"model":"MODEL","training_file":"file-nope"}""", "training_file")]
    [InlineData("""{"model":"MODEL","training_file":"FILE","hyperparameters":{"n_epochs":"many"}}""", "hyperparameters.n_epochs")]
    [InlineData("""{"model":"MODEL","training_file":"FILE","hyperparameters":{"batch_size":0}}""", "hyperparameters.batch_size")]
    [InlineData("""{"model":"MODEL","training_file":"FILE","safety":{"strategy":["vibes"]}}""", "safety.strategy")]
    // Combinations and bounds the worker enforces are refused at create time too.
    [InlineData("""{"model":"MODEL","training_file":"FILE","safety":{"strategy":["merge","safemerge"]}}""", "safety.strategy")]
    [InlineData("""{"model":"MODEL","training_file":"FILE","safety":{"strategy":["antidote"],"params":{"sparsity":0.01}}}""", "safety.params.sparsity")]
    [InlineData("""{"model":"MODEL","training_file":"FILE","safety":{"strategy":"antidote","params":{"antidote":{"dense_ratio":2}}}}""", "safety.params.antidote.dense_ratio")]
    [InlineData("""{"model":"MODEL","training_file":"FILE","safety":{"strategy":"frozen_layers","params":{"frozen_layers":{"first_layer":0,"last_layer":2}}}}""", "safety.params.frozen_layers.last_layer")]
    [InlineData("""{"model":"MODEL","training_file":"FILE","safety":{"strategy":"frozen_layers","params":{"frozen_layers":{"first_layer":1}}}}""", "safety.params.frozen_layers.last_layer")]
    [InlineData("""{"model":"MODEL","training_file":"FILE","safety":{"strategy":["antidote"],"params":{"merge":{"lambda":0.5}}}}""", "safety.params.merge")]
    [InlineData("""{"model":"MODEL","training_file":"FILE","safety":{"strategy":["safety_patch","safemerge","merge"]}}""", "safety.strategy")]
    [InlineData("""{"model":"MODEL","training_file":"FILE","suffix":"has space"}""", "suffix")]
    [InlineData("""{"model":"MODEL","training_file":"FILE","method":{"type":"supervised","supervised":{"adapter":{"rank":0}}}}""", "method.supervised.adapter.rank")]
    [InlineData("""{"model":"MODEL","training_file":"FILE","method":{"type":"supervised","supervised":{"adapter":{"target_modules":["lm_head"]}}}}""", "method.supervised.adapter.target_modules")]
    [InlineData("""{"model":"MODEL","training_file":"FILE","seed":2147483648}""", "seed")]
    [InlineData("""{"model":"MODEL","training_file":"FILE","seed":-1}""", "seed")]
    [InlineData("""{"model":"MODEL","training_file":"FILE","seed":1e30}""", "seed")]
    [InlineData("""{"model":"MODEL","training_file":"FILE","seed":7.5}""", "seed")]
    [InlineData("""{"model":"MODEL","training_file":"FILE","validation_file":"file-nope"}""", "validation_file")]
    public async Task Invalid_requests_are_400s_naming_the_parameter(string body, string param)
    {
        var (client, fileId) = await TenantWithFileAsync("invalid-" + param);
        var content = new StringContent(body.Replace("MODEL", ApiFactory.BaseModelId).Replace("FILE", fileId), System.Text.Encoding.UTF8, "application/json");
        var error = await (await client.PostAsync("/v1/fine_tuning/jobs", content)).ErrorAsync(400);
        Assert.Equal(param, error["param"]!.GetValue<string>());
        Assert.Equal("invalid_request_error", error["type"]!.GetValue<string>());
    }

    [Fact]
    public async Task The_api_docs_of_safety_list_every_registered_strategy_with_its_parameters()
    {
        var swagger = JsonNode.Parse(await _api.CreateClient().GetStringAsync("/swagger/v1/swagger.json"))!;
        var request = swagger["components"]!["schemas"]!["CreateFineTuningJobRequest"]!["properties"]!.AsObject();
        var safety = request.Single(p => p.Key.Equals("safety", StringComparison.OrdinalIgnoreCase)).Value!;
        var names = safety["properties"]!["strategy"]!["oneOf"]![0]!["enum"]!.AsArray().Select(n => n!.GetValue<string>());
        Assert.Equal(SafetyStrategies.Registry.Names, names);
        var documented = safety["properties"]!["params"]!["properties"]!.AsObject();
        foreach (var strategy in SafetyStrategies.Registry.All)
        {
            var schema = documented[strategy.Name]!;
            Assert.Contains(strategy.Description, schema["description"]!.GetValue<string>());
            Assert.Equal(strategy.Fields.Select(f => f.Name), schema["properties"]!.AsObject().Select(p => p.Key));
        }
        Assert.Equal(0.1, documented["antidote"]!["properties"]!["dense_ratio"]!["default"]!.GetValue<double>());
    }

    [Fact]
    public async Task The_api_docs_of_judge_fields_list_every_registered_judge()
    {
        var swagger = JsonNode.Parse(await _api.CreateClient().GetStringAsync("/swagger/v1/swagger.json"))!;
        foreach (var type in new[] { "CreateSafetyEvaluationRequest", "SafetyPolicyRequest" })
        {
            var properties = swagger["components"]!["schemas"]![type]!["properties"]!.AsObject();
            var judge = properties.Single(p => p.Key.Equals("judge", StringComparison.OrdinalIgnoreCase)).Value!;
            Assert.Equal(SafetyJudges.All.Select(j => j.Name), judge["enum"]!.AsArray().Select(n => n!.GetValue<string>()));
            foreach (var registered in SafetyJudges.All)
                Assert.Contains(registered.Description, judge["description"]!.GetValue<string>());
        }
    }

    [Fact]
    public async Task The_same_idempotency_key_returns_the_same_job()
    {
        var (client, fileId) = await TenantWithFileAsync("idempotent");
        var body = new { model = ApiFactory.BaseModelId, training_file = fileId };
        var first = await client.PostJsonAsync("/v1/fine_tuning/jobs", body, idempotencyKey: "retry-1");
        var retry = await client.PostJsonAsync("/v1/fine_tuning/jobs", body, idempotencyKey: "retry-1");
        var other = await client.PostJsonAsync("/v1/fine_tuning/jobs", body, idempotencyKey: "retry-2");

        Assert.Equal(first["id"]!.GetValue<string>(), retry["id"]!.GetValue<string>());
        Assert.NotEqual(first["id"]!.GetValue<string>(), other["id"]!.GetValue<string>());
        Assert.Equal(2, (await client.GetJsonAsync("/v1/fine_tuning/jobs"))["data"]!.AsArray().Count);

        // Pages newest first: the second job, then (after it) the first.
        var page = await client.GetJsonAsync("/v1/fine_tuning/jobs?limit=1");
        Assert.Equal(other["id"]!.GetValue<string>(), page["first_id"]!.GetValue<string>());
        Assert.True(page["has_more"]!.GetValue<bool>());
        var next = await client.GetJsonAsync($"/v1/fine_tuning/jobs?limit=1&after={page["last_id"]}");
        Assert.Equal(first["id"]!.GetValue<string>(), next["data"]![0]!["id"]!.GetValue<string>());
        Assert.False(next["has_more"]!.GetValue<bool>());
    }

    [Fact]
    public async Task Jobs_are_listed_by_metadata_filter()
    {
        var (client, fileId) = await TenantWithFileAsync("metadata-filter");
        async Task<string> Create(object? metadata) => (await client.PostJsonAsync("/v1/fine_tuning/jobs",
            new { model = ApiFactory.BaseModelId, training_file = fileId, metadata }))["id"]!.GetValue<string>();
        var searchOne = await Create(new { team = "search", run = "1" });
        var searchTwo = await Create(new { team = "search", run = "2" });
        await Create(new { team = "ads", run = "1" });
        var plain = await Create(null);

        async Task<List<string>> Ids(string query) => (await client.GetJsonAsync($"/v1/fine_tuning/jobs?{query}"))["data"]!
            .AsArray().Select(j => j!["id"]!.GetValue<string>()).ToList();
        Assert.Equal([searchTwo, searchOne], await Ids("metadata[team]=search"));
        Assert.Equal([searchOne], await Ids("metadata[team]=search&metadata[run]=1"));
        Assert.Empty(await Ids("metadata[team]=nobody"));
        Assert.Equal([plain], await Ids("metadata=null"));
        Assert.Equal("metadata", (await (await client.GetAsync("/v1/fine_tuning/jobs?metadata[]=x")).ErrorAsync(400))["param"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_job_on_an_invalid_file_fails_with_the_files_error()
    {
        var (_, _, client) = await _api.CreateTenantAsync("badfile");
        var file = await client.UploadValidatedAsync("{\"messages\": oops\n" + Datasets.ValidChat());
        var job = await client.PostJsonAsync("/v1/fine_tuning/jobs", new { model = ApiFactory.BaseModelId, training_file = file["id"]!.GetValue<string>() });

        Assert.Equal("failed", job["status"]!.GetValue<string>());
        Assert.Equal("invalid_json", job["error"]!["code"]!.GetValue<string>());
        Assert.Equal("training_file", job["error"]!["param"]!.GetValue<string>());
        Assert.Contains("line 1", job["error"]!["message"]!.GetValue<string>());
        // Finished when it failed, and not before it was created (Unix seconds on the wire).
        var finished = job["finished_at"]!.GetValue<long>();
        Assert.InRange(finished, job["created_at"]!.GetValue<long>(), DateTimeOffset.UtcNow.ToUnixTimeSeconds());
    }

    [Fact]
    public async Task A_job_waits_in_validating_files_until_its_file_is_validated()
    {
        var (tenantId, _, client) = await _api.CreateTenantAsync("waiting");
        // A file whose validation has not run yet: stored, but not enqueued.
        var content = await _api.Services.GetRequiredService<IArtifactStore>()
            .PutAsync(new MemoryStream(System.Text.Encoding.UTF8.GetBytes(Datasets.ValidChat())), "application/jsonl", default);
        var file = new StoredFile { Id = Ids.File(), TenantId = tenantId, Filename = "late.jsonl", Purpose = "fine-tune", Bytes = content.Length, Sha256 = content.Sha256 };
        await _api.WithDbAsync(async db => { db.Files.Add(file); return await db.SaveChangesAsync(); });

        var job = await client.PostJsonAsync("/v1/fine_tuning/jobs", new { model = ApiFactory.BaseModelId, training_file = file.Id });
        Assert.Equal("validating_files", job["status"]!.GetValue<string>());

        _api.Services.GetRequiredService<IJobScheduler>().EnqueueFileValidation(file.Id);
        var status = await Eventually.UntilAsync(
            async () => (await client.GetJsonAsync($"/v1/fine_tuning/jobs/{job["id"]}"))["status"]!.GetValue<string>(),
            s => s != "validating_files", TimeSpan.FromSeconds(30));
        Assert.Equal("queued", status);
    }

    [Fact]
    public async Task Cancel_pause_and_resume_follow_the_state_rules()
    {
        var (client, fileId) = await TenantWithFileAsync("states");
        var id = (await client.PostJsonAsync("/v1/fine_tuning/jobs", new { model = ApiFactory.BaseModelId, training_file = fileId }))["id"]!.GetValue<string>();
        var url = $"/v1/fine_tuning/jobs/{id}";

        await (await client.PostAsync($"{url}/resume", null)).ErrorAsync(400);                 // not paused
        Assert.Equal("paused", (await client.PostJsonAsync($"{url}/pause"))["status"]!.GetValue<string>());
        Assert.Equal(JobStatus.Paused, await _api.WithDbAsync(db => db.Jobs.Where(j => j.Id == id).Select(j => j.Status).SingleAsync()));
        var again = await (await client.PostAsync($"{url}/pause", null)).ErrorAsync(400);
        Assert.Equal("invalid_request_error", again["type"]!.GetValue<string>());
        await client.PostJsonAsync($"{url}/resume");
        Assert.Equal(JobStatus.Queued, await _api.WithDbAsync(db => db.Jobs.Where(j => j.Id == id).Select(j => j.Status).SingleAsync()));

        // While a worker runs it, pause and cancel become requests the worker honours between steps.
        await _api.WithDbAsync(db => db.Jobs.Where(j => j.Id == id).ExecuteUpdateAsync(s => s
            .SetProperty(j => j.Status, JobStatus.Running).SetProperty(j => j.WorkerId, "test-worker")));
        await client.PostJsonAsync($"{url}/pause");
        Assert.Equal(JobControl.Pause, await _api.WithDbAsync(db => db.Jobs.Where(j => j.Id == id).Select(j => j.Control).SingleAsync()));
        await client.PostJsonAsync($"{url}/resume");                                             // withdraws the pause
        Assert.Equal(JobControl.None, await _api.WithDbAsync(db => db.Jobs.Where(j => j.Id == id).Select(j => j.Control).SingleAsync()));
        Assert.Equal("running", (await client.PostJsonAsync($"{url}/cancel"))["status"]!.GetValue<string>());
        Assert.Equal(JobControl.Cancel, await _api.WithDbAsync(db => db.Jobs.Where(j => j.Id == id).Select(j => j.Control).SingleAsync()));

        // A queued job no worker holds is cancelled at once; a cancelled job accepts no transition.
        var second = (await client.PostJsonAsync("/v1/fine_tuning/jobs", new { model = ApiFactory.BaseModelId, training_file = fileId }))["id"]!.GetValue<string>();
        var cancelled = await client.PostJsonAsync($"/v1/fine_tuning/jobs/{second}/cancel");
        Assert.Equal("cancelled", cancelled["status"]!.GetValue<string>());
        Assert.NotNull(cancelled["finished_at"]);
        foreach (var action in new[] { "cancel", "pause", "resume" })
            await (await client.PostAsync($"/v1/fine_tuning/jobs/{second}/{action}", null)).ErrorAsync(400);
    }

    [Fact]
    public async Task Events_page_newest_first_and_checkpoints_latest_step_first()
    {
        var (client, fileId) = await TenantWithFileAsync("events");
        var id = (await client.PostJsonAsync("/v1/fine_tuning/jobs", new { model = ApiFactory.BaseModelId, training_file = fileId }))["id"]!.GetValue<string>();
        await client.PostJsonAsync($"/v1/fine_tuning/jobs/{id}/pause");
        await client.PostJsonAsync($"/v1/fine_tuning/jobs/{id}/resume");   // 5 events: created, validating, queued, paused, resumed

        var all = await _api.WithDbAsync(db => db.JobEvents.Where(e => e.JobId == id).OrderByDescending(e => e.Sequence).Select(e => e.Id).ToListAsync());
        Assert.Equal(5, all.Count);
        var first = await client.GetJsonAsync($"/v1/fine_tuning/jobs/{id}/events?limit=2");
        Assert.True(first["has_more"]!.GetValue<bool>());
        Assert.Equal("Job resumed", first["data"]![0]!["message"]!.GetValue<string>());
        Assert.Equal("fine_tuning.job.event", first["data"]![0]!["object"]!.GetValue<string>());
        var paged = first["data"]!.AsArray().Select(e => e!["id"]!.GetValue<string>()).ToList();
        var after = first["last_id"]!.GetValue<string>();
        JsonNode page;
        do
        {
            page = await client.GetJsonAsync($"/v1/fine_tuning/jobs/{id}/events?limit=2&after={after}");
            paged.AddRange(page["data"]!.AsArray().Select(e => e!["id"]!.GetValue<string>()));
            after = page["last_id"]?.GetValue<string>() ?? after;
        } while (page["has_more"]!.GetValue<bool>());
        Assert.Equal(all, paged);

        await _api.WithDbAsync(async db =>
        {
            foreach (var step in new[] { 10, 15, 20, 30 })
                db.JobCheckpoints.Add(new JobCheckpoint
                {
                    Id = Ids.Checkpoint(), JobId = id, StepNumber = step, FineTunedModelCheckpoint = $"ft:x:ckpt-step-{step}",
                    Metrics = new JsonObject { ["step"] = step, ["train_loss"] = 1.0 / step }, ResumeStateSha256 = new string('b', 64),
                    // Step 15 is only a resume state: the worker's, not a checkpoint model, so not listed.
                    WeightsArtifactSha256 = step == 15 ? null : new string('c', 64),
                });
            return await db.SaveChangesAsync();
        });
        var checkpoints = await client.GetJsonAsync($"/v1/fine_tuning/jobs/{id}/checkpoints?limit=2");
        Assert.Equal([30, 20], checkpoints["data"]!.AsArray().Select(c => c!["step_number"]!.GetValue<int>()));
        Assert.True(checkpoints["has_more"]!.GetValue<bool>());
        var rest = await client.GetJsonAsync($"/v1/fine_tuning/jobs/{id}/checkpoints?after={checkpoints["last_id"]}");
        Assert.Equal([10], rest["data"]!.AsArray().Select(c => c!["step_number"]!.GetValue<int>()));
        Assert.Equal(id, rest["data"]![0]!["fine_tuning_job_id"]!.GetValue<string>());
    }

    [Fact]
    public async Task Continued_training_records_the_lineage_and_another_tenants_model_is_not_found()
    {
        var (owner, fileId) = await TenantWithFileAsync("lineage-owner");
        var (other, otherFile) = await TenantWithFileAsync("lineage-other");
        var parentId = (await owner.PostJsonAsync("/v1/fine_tuning/jobs", new { model = ApiFactory.BaseModelId, training_file = fileId }))["id"]!.GetValue<string>();
        var parentModel = $"ft:{ApiFactory.BaseModelId}:x:unit:{parentId}";
        await _api.WithDbAsync(async db =>
        {
            await db.Jobs.Where(j => j.Id == parentId).ExecuteUpdateAsync(s => s.SetProperty(j => j.Status, JobStatus.Succeeded)
                .SetProperty(j => j.FineTunedModel, parentModel).SetProperty(j => j.ResultArtifactSha256, new string('a', 64)));
            db.JobCheckpoints.Add(new JobCheckpoint
            {
                Id = Ids.Checkpoint(), JobId = parentId, StepNumber = 3, FineTunedModelCheckpoint = $"{parentModel}:ckpt-step-3",
                Metrics = [], WeightsArtifactSha256 = new string('c', 64),
            });
            return await db.SaveChangesAsync();
        });

        var root = await owner.PostJsonAsync("/v1/fine_tuning/jobs", new { model = ApiFactory.BaseModelId, training_file = fileId });
        Assert.Equal((ApiFactory.BaseModelId, "base", ApiFactory.BaseModelId, 0),
            (root["lineage"]!["parent_model"]!.GetValue<string>(), root["lineage"]!["parent_kind"]!.GetValue<string>(),
                root["lineage"]!["root_model"]!.GetValue<string>(), root["lineage"]!["depth"]!.GetValue<int>()));
        Assert.Null(root["lineage"]!["parent_job"]);

        foreach (var (model, kind) in new[] { (parentModel, "fine_tuned"), ($"{parentModel}:ckpt-step-3", "checkpoint") })
        {
            var child = await owner.PostJsonAsync("/v1/fine_tuning/jobs", new { model, training_file = fileId });
            var lineage = child["lineage"]!;
            Assert.Equal((model, kind, parentId, ApiFactory.BaseModelId, 1),
                (lineage["parent_model"]!.GetValue<string>(), lineage["parent_kind"]!.GetValue<string>(), lineage["parent_job"]!.GetValue<string>(),
                    lineage["root_model"]!.GetValue<string>(), lineage["depth"]!.GetValue<int>()));
            Assert.Equal(model, child["model"]!.GetValue<string>());
            var events = await owner.GetJsonAsync($"/v1/fine_tuning/jobs/{child["id"]}/events");
            Assert.Contains(events["data"]!.AsArray(), e => e!["message"]!.GetValue<string>().StartsWith($"Continuing training from {model}", StringComparison.Ordinal));

            // Another tenant's model, fine-tuned or checkpoint, is a 404 exactly like a model that never existed.
            var refused = await other.PostAsJsonAsync("/v1/fine_tuning/jobs", new { model, training_file = otherFile });
            var error = await refused.ErrorAsync(404);
            Assert.Equal(("model", "model_not_found"), (error["param"]!.GetValue<string>(), error["code"]!.GetValue<string>()));
        }
        var unknown = await (await owner.PostAsJsonAsync("/v1/fine_tuning/jobs", new { model = "no-such-model", training_file = fileId })).ErrorAsync(404);
        Assert.Equal(("model", "model_not_found"), (unknown["param"]!.GetValue<string>(), unknown["code"]!.GetValue<string>()));
    }

    [Fact]
    public async Task Another_tenants_job_is_not_found()
    {
        var (owner, fileId) = await TenantWithFileAsync("job-owner");
        var (_, _, other) = await _api.CreateTenantAsync("job-other");
        var id = (await owner.PostJsonAsync("/v1/fine_tuning/jobs", new { model = ApiFactory.BaseModelId, training_file = fileId }))["id"]!.GetValue<string>();

        await (await other.GetAsync($"/v1/fine_tuning/jobs/{id}")).ErrorAsync(404);
        await (await other.GetAsync($"/v1/fine_tuning/jobs/{id}/events")).ErrorAsync(404);
        await (await other.GetAsync($"/v1/fine_tuning/jobs/{id}/checkpoints")).ErrorAsync(404);
        foreach (var action in new[] { "cancel", "pause", "resume" })
            await (await other.PostAsync($"/v1/fine_tuning/jobs/{id}/{action}", null)).ErrorAsync(404);
        Assert.Empty((await other.GetJsonAsync("/v1/fine_tuning/jobs"))["data"]!.AsArray());
        Assert.Equal("queued", (await owner.GetJsonAsync($"/v1/fine_tuning/jobs/{id}"))["status"]!.GetValue<string>());

        var all = await _api.AdminClient().GetJsonAsync("/v1/admin/fine_tuning/jobs");
        Assert.Contains(all["data"]!.AsArray(), j => j!["id"]!.GetValue<string>() == id);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2147483647)]
    public async Task Seeds_at_both_ends_of_the_range_are_kept(long seed)
    {
        var (client, fileId) = await TenantWithFileAsync($"seed-{seed}");
        var job = await client.PostJsonAsync("/v1/fine_tuning/jobs", new { model = ApiFactory.BaseModelId, training_file = fileId, seed });
        Assert.Equal(seed, job["seed"]!.GetValue<long>());
    }

    [Fact]
    public async Task Concurrent_creates_with_one_idempotency_key_make_exactly_one_job()
    {
        var (client, fileId) = await TenantWithFileAsync("idempotent-race");
        var body = new { model = ApiFactory.BaseModelId, training_file = fileId };

        var answers = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => client.PostJsonAsync("/v1/fine_tuning/jobs", body, idempotencyKey: "race")));

        var id = Assert.Single(answers.Select(a => a["id"]!.GetValue<string>()).Distinct());
        Assert.Equal([id], (await client.GetJsonAsync("/v1/fine_tuning/jobs"))["data"]!.AsArray().Select(j => j!["id"]!.GetValue<string>()));
        Assert.Equal(1, await _api.WithDbAsync(db => db.Jobs.CountAsync(j => j.IdempotencyKey == "race" && j.TrainingFileId == fileId)));
    }

    [Fact]
    public async Task An_idempotency_key_reused_with_a_different_body_is_refused_and_the_first_job_stands()
    {
        var (client, fileId) = await TenantWithFileAsync("idempotent-body");
        var first = await client.PostJsonAsync("/v1/fine_tuning/jobs", new { model = ApiFactory.BaseModelId, training_file = fileId, suffix = "one" }, idempotencyKey: "reused");

        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/fine_tuning/jobs")
        {
            Content = System.Net.Http.Json.JsonContent.Create(new { model = ApiFactory.BaseModelId, training_file = fileId, suffix = "two" }),
        };
        request.Headers.Add("Idempotency-Key", "reused");
        var error = await (await client.SendAsync(request)).ErrorAsync(422);

        Assert.Equal("idempotency_key_reused", error["code"]!.GetValue<string>());
        Assert.Contains(first["id"]!.GetValue<string>(), error["message"]!.GetValue<string>());
        var jobs = (await client.GetJsonAsync("/v1/fine_tuning/jobs"))["data"]!.AsArray();
        Assert.Equal("one", Assert.Single(jobs)!["user_provided_suffix"]!.GetValue<string>());
        // The same body again is still a retry.
        Assert.Equal(first["id"]!.GetValue<string>(), (await client.PostJsonAsync("/v1/fine_tuning/jobs",
            new { model = ApiFactory.BaseModelId, training_file = fileId, suffix = "one" }, idempotencyKey: "reused"))["id"]!.GetValue<string>());
    }

    [Fact]
    public async Task Two_tenants_using_the_same_idempotency_key_get_their_own_jobs()
    {
        var (alice, aliceFile) = await TenantWithFileAsync("idempotent-alice");
        var (bob, bobFile) = await TenantWithFileAsync("idempotent-bob");

        var aliceJob = await alice.PostJsonAsync("/v1/fine_tuning/jobs", new { model = ApiFactory.BaseModelId, training_file = aliceFile }, idempotencyKey: "shared-key");
        var bobJob = await bob.PostJsonAsync("/v1/fine_tuning/jobs", new { model = ApiFactory.BaseModelId, training_file = bobFile }, idempotencyKey: "shared-key");

        Assert.NotEqual(aliceJob["id"]!.GetValue<string>(), bobJob["id"]!.GetValue<string>());
        Assert.Equal(bobFile, bobJob["training_file"]!.GetValue<string>());
        Assert.NotEqual(aliceJob["organization_id"]!.GetValue<string>(), bobJob["organization_id"]!.GetValue<string>());
        await (await bob.GetAsync($"/v1/fine_tuning/jobs/{aliceJob["id"]}")).ErrorAsync(404);
    }

    [Fact]
    public async Task A_preference_file_validates_and_a_supervised_job_on_it_fails_naming_the_method()
    {
        var (_, _, client) = await _api.CreateTenantAsync("preference-file");
        const string pair = """{"input":{"messages":[{"role":"user","content":"Pick a lock?"}]},"preferred_output":[{"role":"assistant","content":"I can't help."}],"non_preferred_output":[{"role":"assistant","content":"Sure."}]}""";
        var file = await client.UploadValidatedAsync(string.Join('\n', Enumerable.Repeat(pair, 10)) + "\n");
        Assert.Equal("processed", file["status"]!.GetValue<string>());

        var job = await client.PostJsonAsync("/v1/fine_tuning/jobs", new { model = ApiFactory.BaseModelId, training_file = file["id"] });

        Assert.Equal("failed", job["status"]!.GetValue<string>());
        Assert.Equal("training_file", job["error"]!["param"]!.GetValue<string>());
        Assert.Equal("invalid_training_file", job["error"]!["code"]!.GetValue<string>());
        Assert.Contains("method dpo", job["error"]!["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_dpo_job_on_a_chat_file_fails_naming_the_method_and_a_bad_beta_is_a_400()
    {
        var (_, _, client) = await _api.CreateTenantAsync("dpo-chat-file");
        var file = await client.UploadValidatedAsync(Datasets.ValidChat());

        var job = await client.PostJsonAsync("/v1/fine_tuning/jobs", new
        {
            model = ApiFactory.BaseModelId, training_file = file["id"], method = new { type = "dpo", dpo = new { hyperparameters = new { beta = 0.1 } } },
        });
        Assert.Equal("failed", job["status"]!.GetValue<string>());
        Assert.Equal("invalid_training_file", job["error"]!["code"]!.GetValue<string>());
        Assert.Contains("method dpo trains on preference rows", job["error"]!["message"]!.GetValue<string>());
        Assert.Equal(0.1, job["method"]!["dpo"]!["hyperparameters"]!["beta"]!.GetValue<double>());

        var response = await client.PostAsJsonAsync("/v1/fine_tuning/jobs", new
        {
            model = ApiFactory.BaseModelId, training_file = file["id"], method = new { type = "dpo", dpo = new { hyperparameters = new { beta = -1 } } },
        });
        Assert.Equal(400, (int)response.StatusCode);
        Assert.Equal("method.dpo.hyperparameters.beta", JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!["param"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_validation_file_is_waited_for_like_the_training_file_and_its_errors_fail_the_job()
    {
        var (tenantId, _, client) = await _api.CreateTenantAsync("validation-file");
        var training = (await client.UploadValidatedAsync(Datasets.ValidChat()))["id"]!.GetValue<string>();
        var valid = (await client.UploadValidatedAsync(Datasets.ValidChat(10)))["id"]!.GetValue<string>();
        var invalid = await client.UploadValidatedAsync("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n" + Datasets.ValidChat());
        Assert.Equal("error", invalid["status"]!.GetValue<string>());

        var ok = await client.PostJsonAsync("/v1/fine_tuning/jobs", new { model = ApiFactory.BaseModelId, training_file = training, validation_file = valid });
        Assert.Equal("queued", ok["status"]!.GetValue<string>());
        Assert.Equal(valid, ok["validation_file"]!.GetValue<string>());
        Assert.Equal(valid, (await client.GetJsonAsync($"/v1/fine_tuning/jobs/{ok["id"]}"))["validation_file"]!.GetValue<string>());
        var events = (await client.GetJsonAsync($"/v1/fine_tuning/jobs/{ok["id"]}/events"))["data"]!.AsArray().Select(e => e!["message"]!.GetValue<string>());
        Assert.Contains($"Validating training file: {training} and validation file: {valid}", events);

        var failed = await client.PostJsonAsync("/v1/fine_tuning/jobs", new { model = ApiFactory.BaseModelId, training_file = training, validation_file = invalid["id"] });
        Assert.Equal("failed", failed["status"]!.GetValue<string>());
        Assert.Equal("validation_file", failed["error"]!["param"]!.GetValue<string>());
        Assert.Equal("no_assistant_message", failed["error"]!["code"]!.GetValue<string>());
        Assert.Contains("line 1", failed["error"]!["message"]!.GetValue<string>());

        // A validation file that is still being validated holds the job back, whatever the training file's state.
        var content = await _api.Services.GetRequiredService<IArtifactStore>()
            .PutAsync(new MemoryStream(System.Text.Encoding.UTF8.GetBytes(Datasets.ValidChat(11))), "application/jsonl", default);
        var late = new StoredFile { Id = Ids.File(), TenantId = tenantId, Filename = "late-valid.jsonl", Purpose = "fine-tune", Bytes = content.Length, Sha256 = content.Sha256 };
        await _api.WithDbAsync(async db => { db.Files.Add(late); return await db.SaveChangesAsync(); });
        var waiting = await client.PostJsonAsync("/v1/fine_tuning/jobs", new { model = ApiFactory.BaseModelId, training_file = training, validation_file = late.Id });
        Assert.Equal("validating_files", waiting["status"]!.GetValue<string>());
        _api.Services.GetRequiredService<IJobScheduler>().EnqueueFileValidation(late.Id);
        var status = await Eventually.UntilAsync(
            async () => (await client.GetJsonAsync($"/v1/fine_tuning/jobs/{waiting["id"]}"))["status"]!.GetValue<string>(),
            s => s != "validating_files", TimeSpan.FromSeconds(30));
        Assert.Equal("queued", status);

        // Another tenant's file is no file of this tenant's: the same answer as a file that never existed.
        var (_, otherFile) = await TenantWithFileAsync("validation-file-other");
        var foreign = await (await client.PostAsync("/v1/fine_tuning/jobs", System.Net.Http.Json.JsonContent.Create(
            new { model = ApiFactory.BaseModelId, training_file = training, validation_file = otherFile }))).ErrorAsync(400);
        Assert.Equal("validation_file", foreign["param"]!.GetValue<string>());
    }
}
