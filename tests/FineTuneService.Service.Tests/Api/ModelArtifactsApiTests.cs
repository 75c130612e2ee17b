using System.Buffers.Binary;
using System.Diagnostics;
using System.Formats.Tar;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using FineTuneService.Core.Artifacts;
using FineTuneService.Core.Domain;
using FineTuneService.Service.Tests.Inference;
using FineTuneService.Service.Tests.Infrastructure;
using FineTuneService.Service.Tests.Worker;
using Hangfire;
using Hangfire.Storage;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace FineTuneService.Service.Tests.Api;

/// <summary>
/// What a tenant does with a trained model: read the metrics file, download the weights (full or adapter), chat,
/// delete the model; and what retention leaves behind. The API host with the worker's device and inference servers
/// in the same process (<see cref="InferenceServiceHost"/>), real PostgreSQL, Hangfire and TorchSharp training of the
/// tiny model. Retention runs only when a test triggers it, and then collects unreferenced content at once.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ModelArtifactsApiTests(PostgresServer server, InferenceServiceHost host) : IClassFixture<InferenceServiceHost>
{
    private Task<ApiFactory> StartAsync() => host.GetAsync(server, settings =>
    {
        settings["Worker:CheckpointEverySteps"] = "5";
        settings["Worker:MetricsEverySteps"] = "5";
        settings["Artifacts:Retention:Schedule"] = Cron.Never();
        settings["Artifacts:Retention:CollectUnreferencedAfter"] = "00:00:00";
        settings["Artifacts:Retention:StagingTimeout"] = "01:00:00";
    });

    private static async Task<(ApiFactory Api, HttpClient Client)> TenantAsync(ApiFactory api, string name)
    {
        var (_, key) = await InferenceServiceHost.CreateTenantAsync(api, name);
        return (api, InferenceServiceHost.Http(api, key));
    }

    [Fact]
    public async Task A_succeeded_job_has_a_metrics_csv_and_downloads_as_a_hugging_face_folder()
    {
        var (_, client) = await TenantAsync(await StartAsync(), "export-owner");
        // 40 rows, batch 4, one epoch: 10 steps; a resume state at step 5, the epoch's checkpoint at step 10.
        var training = (await client.UploadValidatedAsync(TinyBaseModel.Jsonl(40)))["id"]!.GetValue<string>();
        var validation = (await client.UploadValidatedAsync(TinyBaseModel.Jsonl(12)))["id"]!.GetValue<string>();
        var job = await TrainAsync(client, new { model = TinyBaseModel.Id, training_file = training, validation_file = validation, suffix = "export",
            hyperparameters = new { n_epochs = 1, batch_size = 4 } });
        var model = job["fine_tuned_model"]!.GetValue<string>();

        // A one-epoch job lists its epoch checkpoint, with token accuracies.
        var checkpoints = (await client.GetJsonAsync($"/v1/fine_tuning/jobs/{job["id"]}/checkpoints"))["data"]!.AsArray();
        var checkpoint = Assert.Single(checkpoints)!;
        Assert.Equal(10, checkpoint["step_number"]!.GetValue<int>());
        var metrics = checkpoint["metrics"]!;
        foreach (var key in new[] { "train_mean_token_accuracy", "valid_mean_token_accuracy", "full_valid_mean_token_accuracy" })
            Assert.InRange(metrics[key]!.GetValue<double>(), 0, 1);
        Assert.True(metrics["valid_loss"]!.GetValue<double>() > 0);

        // result_files[0] is the metrics CSV, a file of the tenant's like any other.
        var resultFile = Assert.Single(job["result_files"]!.AsArray())!.GetValue<string>();
        var file = await client.GetJsonAsync($"/v1/files/{resultFile}");
        Assert.Equal("fine-tune-results", file["purpose"]!.GetValue<string>());
        Assert.Equal("step_metrics.csv", file["filename"]!.GetValue<string>());
        Assert.Contains(resultFile, (await client.GetJsonAsync("/v1/files"))["data"]!.AsArray().Select(f => f!["id"]!.GetValue<string>()));
        var csv = (await client.GetStringAsync($"/v1/files/{resultFile}/content")).TrimEnd('\n').Split('\n');
        Assert.Equal("step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy", string.Join(',', csv[0].Split(',').Take(5)));
        var rows = csv.Skip(1).Select(line => line.Split(',')).ToList();
        Assert.Equal(Enumerable.Range(1, 10).Select(s => s.ToString()), rows.Select(r => r[0]));
        Assert.All(rows, r =>
        {
            Assert.True(double.Parse(r[1], System.Globalization.CultureInfo.InvariantCulture) > 0);
            Assert.InRange(double.Parse(r[2], System.Globalization.CultureInfo.InvariantCulture), 0, 1);
        });
        // Validated every 5 steps (Worker:CheckpointEverySteps) and at the end of the epoch, where the checkpoint's figures come from.
        Assert.Equal(["5", "10"], rows.Where(r => r[3] != "").Select(r => r[0]));
        Assert.All(rows.Where(r => r[3] != ""), r => Assert.InRange(double.Parse(r[4], System.Globalization.CultureInfo.InvariantCulture), 0, 1));
        Assert.Equal(metrics["valid_loss"]!.GetValue<double>(), double.Parse(rows[^1][3], System.Globalization.CultureInfo.InvariantCulture), 1e-5);

        // The download: a tar of the Hugging Face folder plus the safety report, as GNU tar reads it too.
        using var response = await client.GetAsync($"/v1/models/{model}/content", HttpCompletionOption.ResponseHeadersRead);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        Assert.Equal("application/x-tar", response.Content.Headers.ContentType!.MediaType);
        var archive = await response.Content.ReadAsByteArrayAsync();
        var files = ReadTar(archive);
        Assert.Subset(files.Keys.ToHashSet(), new HashSet<string>
        {
            "config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "special_tokens_map.json", "vocab.json", "merges.txt", "safety_report.json",
        });
        Assert.DoesNotContain(files.Keys, name => name.StartsWith("adapter/", StringComparison.Ordinal));
        Assert.Equal(files.Keys.Order(), ExtractWithGnuTar(archive).Order());

        var config = JsonNode.Parse(files["config.json"])!;
        Assert.Equal("qwen2", config["model_type"]!.GetValue<string>());
        AssertHuggingFaceWeights(config, files["model.safetensors"]);
        Assert.Contains("{%", JsonNode.Parse(files["tokenizer_config.json"])!["chat_template"]!.GetValue<string>());
        Assert.NotNull(JsonNode.Parse(files["generation_config.json"])!["eos_token_id"]);
        var report = JsonNode.Parse(files["safety_report.json"])!;
        Assert.Equal(model, report["model"]!.GetValue<string>());
        Assert.Equal("fine_tuned", report["kind"]!.GetValue<string>());
        Assert.Equal(job["id"]!.GetValue<string>(), report["fine_tuning_job"]!.GetValue<string>());
        Assert.NotNull(report["safety"]!["strategy"]);

        // The loader the workers use reads it back, and the checkpoint model downloads the same way.
        await using (var scratch = new TempFolder())
        {
            foreach (var (name, content) in files) await File.WriteAllBytesAsync(Path.Combine(scratch.Path, name), content);
            using var loaded = Ml.Models.HuggingFaceCheckpoint.Load(scratch.Path).Model;
            Assert.Equal(config["hidden_size"]!.GetValue<int>(), loaded.Config.HiddenSize);
        }
        var checkpointFiles = ReadTar(await client.GetByteArrayAsync($"/v1/models/{model}:ckpt-step-10/content"));
        Assert.Equal("checkpoint", JsonNode.Parse(checkpointFiles["safety_report.json"])!["kind"]!.GetValue<string>());
        AssertHuggingFaceWeights(JsonNode.Parse(checkpointFiles["config.json"])!, checkpointFiles["model.safetensors"]);

        // No adapter for a full fine-tune; the base model downloads too (every tenant may use it).
        var error = await (await client.GetAsync($"/v1/models/{model}/content?format=adapter")).ErrorAsync(400);
        Assert.Equal("format", error["param"]!.GetValue<string>());
        Assert.Equal("format", (await (await client.GetAsync($"/v1/models/{model}/content?format=gguf")).ErrorAsync(400))["param"]!.GetValue<string>());
        Assert.Contains("model.safetensors", ReadTar(await client.GetByteArrayAsync($"/v1/models/{TinyBaseModel.Id}/content")).Keys);
    }

    [Fact]
    public async Task A_lora_job_downloads_its_peft_adapter()
    {
        var (_, client) = await TenantAsync(await StartAsync(), "export-lora");
        var training = (await client.UploadValidatedAsync(TinyBaseModel.Jsonl(12)))["id"]!.GetValue<string>();
        var job = await TrainAsync(client, new
        {
            model = TinyBaseModel.Id, training_file = training, suffix = "lora",
            method = new
            {
                type = "supervised",
                supervised = new
                {
                    hyperparameters = new { n_epochs = 1, batch_size = 4 },
                    adapter = new { type = "lora", rank = 4, alpha = 8, dropout = 0, target_modules = new[] { "q_proj", "v_proj" } },
                },
            },
        });
        var model = job["fine_tuned_model"]!.GetValue<string>();

        var adapter = ReadTar(await client.GetByteArrayAsync($"/v1/models/{model}/content?format=adapter"));
        Assert.Equal(["adapter_config.json", "adapter_model.safetensors"], adapter.Keys.Order());
        var peft = JsonNode.Parse(adapter["adapter_config.json"])!;
        Assert.Equal("LORA", peft["peft_type"]!.GetValue<string>());
        Assert.Equal(4, peft["r"]!.GetValue<int>());
        var config = JsonNode.Parse(ReadTar(await client.GetByteArrayAsync($"/v1/models/{model}/content"))["config.json"])!;
        var hidden = config["hidden_size"]!.GetValue<int>();
        var headDim = hidden / config["num_attention_heads"]!.GetValue<int>();
        var vOut = config["num_key_value_heads"]!.GetValue<int>() * headDim;
        var tensors = SafetensorsHeader(adapter["adapter_model.safetensors"]);
        var expected = new Dictionary<string, long[]>();
        for (var layer = 0; layer < config["num_hidden_layers"]!.GetValue<int>(); layer++)
        {
            var prefix = $"base_model.model.model.layers.{layer}.self_attn";
            expected[$"{prefix}.q_proj.lora_A.weight"] = [4, hidden];
            expected[$"{prefix}.q_proj.lora_B.weight"] = [hidden, 4];
            expected[$"{prefix}.v_proj.lora_A.weight"] = [4, hidden];
            expected[$"{prefix}.v_proj.lora_B.weight"] = [vOut, 4];
        }
        Assert.Equal(expected.Keys.Order(), tensors.Keys.Order());
        foreach (var (name, shape) in expected) Assert.Equal(shape, tensors[name].Shape);

        // The epoch checkpoint of a LoRA job is a model with an adapter too.
        var checkpoint = $"{model}:ckpt-step-3";
        Assert.Contains("adapter_model.safetensors", ReadTar(await client.GetByteArrayAsync($"/v1/models/{checkpoint}/content?format=adapter")).Keys);
    }

    [Fact]
    public async Task Delete_removes_the_model_everywhere_and_another_tenant_can_neither_download_nor_delete_it()
    {
        var app = await StartAsync();
        var (_, owner) = await TenantAsync(app, "delete-owner");
        var (_, other) = await TenantAsync(app, "delete-other");
        var training = (await owner.UploadValidatedAsync(TinyBaseModel.Jsonl(12)))["id"]!.GetValue<string>();
        var job = await TrainAsync(owner, new { model = TinyBaseModel.Id, training_file = training, suffix = "doomed",
            hyperparameters = new { n_epochs = 2, batch_size = 4 } });
        var model = job["fine_tuned_model"]!.GetValue<string>();
        string[] checkpoints = [$"{model}:ckpt-step-3", $"{model}:ckpt-step-6"];

        foreach (var id in checkpoints.Prepend(model)) Assert.Equal(200, (int)(await ChatAsync(owner, id)).StatusCode);

        // Another tenant: exactly as if the model never existed.
        foreach (var id in checkpoints.Prepend(model))
        {
            await ExpectModelNotFoundAsync(await ChatAsync(other, id));
            await ExpectModelNotFoundAsync(await other.GetAsync($"/v1/models/{id}/content"));
            await ExpectModelNotFoundAsync(await other.DeleteAsync($"/v1/models/{id}"));
        }
        Assert.Equal(403, (int)(await owner.DeleteAsync($"/v1/models/{TinyBaseModel.Id}")).StatusCode);
        Assert.Equal(400, (int)(await owner.DeleteAsync($"/v1/models/{checkpoints[0]}")).StatusCode);

        var deleted = JsonNode.Parse(await (await owner.DeleteAsync($"/v1/models/{model}")).Content.ReadAsStringAsync())!;
        Assert.Equal(model, deleted["id"]!.GetValue<string>());
        Assert.Equal("model", deleted["object"]!.GetValue<string>());
        Assert.True(deleted["deleted"]!.GetValue<bool>());

        // Gone for every use, checkpoints included; the job and its metrics file stay.
        foreach (var id in checkpoints.Prepend(model))
        {
            await ExpectModelNotFoundAsync(await ChatAsync(owner, id));
            await ExpectModelNotFoundAsync(await owner.GetAsync($"/v1/models/{id}"));
            await ExpectModelNotFoundAsync(await owner.GetAsync($"/v1/models/{id}/content"));
        }
        await ExpectModelNotFoundAsync(await owner.DeleteAsync($"/v1/models/{model}"));
        var listed = (await owner.GetJsonAsync("/v1/models"))["data"]!.AsArray().Select(m => m!["id"]!.GetValue<string>()).ToList();
        Assert.Equal([TinyBaseModel.Id], listed);
        Assert.Empty((await owner.GetJsonAsync($"/v1/fine_tuning/jobs/{job["id"]}/checkpoints"))["data"]!.AsArray());
        var again = await owner.GetJsonAsync($"/v1/fine_tuning/jobs/{job["id"]}");
        Assert.Equal("succeeded", again["status"]!.GetValue<string>());
        await owner.GetStringAsync($"/v1/files/{again["result_files"]![0]}/content");
        var continued = await owner.PostAsJsonAsync("/v1/fine_tuning/jobs", new { model, training_file = training });
        await ExpectModelNotFoundAsync(continued);

        // Its weights are released: collected by the next retention pass, nothing else referencing them.
        var weights = (await app.WithDbAsync(db => db.Jobs.SingleAsync(j => j.Id == job["id"]!.GetValue<string>()))).ResultArtifactSha256!;
        await RunRetentionAsync(app);
        Assert.False(await app.WithDbAsync(db => db.Artifacts.AnyAsync(a => a.Sha256 == weights)));
        Assert.False(await app.WithDbAsync(db => db.ArtifactChunks.AnyAsync(c => c.Sha256 == weights)));
    }

    [Fact]
    public async Task After_a_job_succeeds_retention_keeps_the_last_three_epochs_and_the_final_weights_and_collects_the_rest()
    {
        var app = await StartAsync();
        var (_, client) = await TenantAsync(app, "retention");
        // 12 rows, batch 4, 4 epochs: 12 steps; resume states at 5 and 10, epoch checkpoints at 3, 6, 9 and 12.
        var training = (await client.UploadValidatedAsync(TinyBaseModel.Jsonl(12)))["id"]!.GetValue<string>();
        var job = await TrainAsync(client, new { model = TinyBaseModel.Id, training_file = training, suffix = "kept",
            hyperparameters = new { n_epochs = 4, batch_size = 4 } });
        var jobId = job["id"]!.GetValue<string>();
        var before = await app.WithDbAsync(db => db.JobCheckpoints.AsNoTracking().Where(c => c.JobId == jobId).OrderBy(c => c.StepNumber).ToListAsync());
        Assert.Equal([3, 5, 6, 9, 10, 12], before.Select(c => c.StepNumber));

        // Litter: a killed upload's staging rows, content nothing references, a deleted file's content.
        var store = app.Services.GetRequiredService<IArtifactStore>();
        var orphan = (await store.PutAsync(new MemoryStream(Encoding.UTF8.GetBytes($"orphan {Guid.NewGuid()}")), "text/plain", CancellationToken.None)).Sha256;
        var deletedFile = (await client.UploadValidatedAsync(TinyBaseModel.Jsonl(11)))["id"]!.GetValue<string>();
        Assert.True((await client.DeleteAsync($"/v1/files/{deletedFile}")).IsSuccessStatusCode);
        var deletedContent = (await app.WithDbAsync(db => db.Files.SingleAsync(f => f.Id == deletedFile))).Sha256;
        var staging = "staging-" + Guid.NewGuid().ToString("N");
        await app.WithDbAsync(async db =>
        {
            db.Artifacts.Add(new Artifact { Sha256 = staging, CreatedAt = DateTime.UtcNow.AddDays(-1) });
            db.ArtifactChunks.Add(new ArtifactChunk { Sha256 = staging, Index = 0, Data = [1, 2, 3] });
            return await db.SaveChangesAsync();
        });

        await RunRetentionAsync(app);

        // Only the last three epoch checkpoints remain, as models without resume state.
        var after = await app.WithDbAsync(db => db.JobCheckpoints.AsNoTracking().Where(c => c.JobId == jobId).OrderBy(c => c.StepNumber).ToListAsync());
        Assert.Equal([6, 9, 12], after.Select(c => c.StepNumber));
        Assert.All(after, c => Assert.Null(c.ResumeStateSha256));
        Assert.Equal([12, 9, 6], (await client.GetJsonAsync($"/v1/fine_tuning/jobs/{jobId}/checkpoints"))["data"]!.AsArray()
            .Select(c => c!["step_number"]!.GetValue<int>()));
        var models = (await client.GetJsonAsync("/v1/models"))["data"]!.AsArray().Select(m => m!["id"]!.GetValue<string>()).ToList();
        var model = job["fine_tuned_model"]!.GetValue<string>();
        Assert.Equal([TinyBaseModel.Id, model, $"{model}:ckpt-step-12", $"{model}:ckpt-step-9", $"{model}:ckpt-step-6"], models);

        // Unreferenced chunks are collected; everything still referenced stays.
        var done = await app.WithDbAsync(db => db.Jobs.SingleAsync(j => j.Id == jobId));
        var baseModel = await app.WithDbAsync(db => db.BaseModels.SingleAsync(m => m.Id == TinyBaseModel.Id));
        var trainingContent = (await app.WithDbAsync(db => db.Files.SingleAsync(f => f.Id == training))).Sha256;
        var resultFile = (await app.WithDbAsync(db => db.Files.SingleAsync(f => f.Id == done.ResultFiles[0]))).Sha256;
        string[] collected =
        [
            orphan, deletedContent, staging,
            .. before.Where(c => c.StepNumber is 3 or 5 or 10).SelectMany(c => new[] { c.ResumeStateSha256!, c.WeightsArtifactSha256 }).OfType<string>(),
            .. before.Select(c => c.ResumeStateSha256!),
        ];
        string[] kept =
        [
            done.ResultArtifactSha256!, baseModel.ArtifactSha256, trainingContent, resultFile,
            .. after.Select(c => c.WeightsArtifactSha256!),
        ];
        Assert.Empty(collected.Intersect(kept));
        foreach (var sha in collected.Distinct())
        {
            Assert.False(await app.WithDbAsync(db => db.Artifacts.AnyAsync(a => a.Sha256 == sha)), $"{sha} should be collected");
            Assert.False(await app.WithDbAsync(db => db.ArtifactChunks.AnyAsync(c => c.Sha256 == sha)), $"chunks of {sha} should be collected");
        }
        foreach (var sha in kept)
            Assert.True(await app.WithDbAsync(db => db.ArtifactChunks.AnyAsync(c => c.Sha256 == sha)), $"{sha} should be kept");

        // The kept model still downloads and the pass is idempotent.
        Assert.Contains("model.safetensors", ReadTar(await client.GetByteArrayAsync($"/v1/models/{model}:ckpt-step-6/content")).Keys);
        var second = await app.Services.CreateScope().ServiceProvider.GetRequiredService<IArtifactRetentionJob>().RunAsync(CancellationToken.None);
        Assert.Equal(new RetentionResult(0, 0, 0, 0), second);
    }

    [Fact]
    public async Task Retention_keeps_an_old_checkpoint_while_an_unfinished_job_starts_from_it()
    {
        var app = await StartAsync();
        var (_, client) = await TenantAsync(app, "retention-child");
        // 12 rows, batch 4, 4 epochs: epoch checkpoints at 3, 6, 9 and 12; step 3 is past the three kept.
        var training = (await client.UploadValidatedAsync(TinyBaseModel.Jsonl(12)))["id"]!.GetValue<string>();
        var job = await TrainAsync(client, new { model = TinyBaseModel.Id, training_file = training, suffix = "parent",
            hyperparameters = new { n_epochs = 4, batch_size = 4 } });
        var jobId = job["id"]!.GetValue<string>();
        var oldest = $"{job["fine_tuned_model"]!.GetValue<string>()}:ckpt-step-3";
        var weights = (await app.WithDbAsync(db => db.JobCheckpoints.SingleAsync(c => c.FineTunedModelCheckpoint == oldest))).WeightsArtifactSha256!;

        // A child that continues from the oldest checkpoint and waits for a worker (written directly, so no worker takes it meanwhile).
        var child = await app.WithDbAsync(async db =>
        {
            var parent = await db.Jobs.SingleAsync(j => j.Id == jobId);
            var row = new FineTuningJob
            {
                Id = Ids.Job(), TenantId = parent.TenantId, Model = oldest, RootModel = TinyBaseModel.Id,
                ParentJobId = jobId, LineageDepth = 1, TrainingFileId = training, Status = JobStatus.Queued, CreatedAt = DateTime.UtcNow,
            };
            db.Jobs.Add(row);
            await db.SaveChangesAsync();
            return row.Id;
        });

        async Task<int[]> StepsAsync() => [.. await app.WithDbAsync(db => db.JobCheckpoints.AsNoTracking().Where(c => c.JobId == jobId)
            .OrderBy(c => c.StepNumber).Select(c => c.StepNumber).ToListAsync())];
        await RunRetentionAsync(app);
        Assert.Equal(new[] { 3, 6, 9, 12 }, await StepsAsync());
        Assert.True(await app.WithDbAsync(db => db.ArtifactChunks.AnyAsync(c => c.Sha256 == weights)), "the checkpoint's weights should be kept");
        Assert.Contains(oldest, (await client.GetJsonAsync("/v1/models"))["data"]!.AsArray().Select(m => m!["id"]!.GetValue<string>()));

        // Once the child is finished, nothing starts from it any more: the next pass prunes it and collects its weights.
        await app.WithDbAsync(db => db.Jobs.Where(j => j.Id == child)
            .ExecuteUpdateAsync(set => set.SetProperty(j => j.Status, JobStatus.Cancelled).SetProperty(j => j.FinishedAt, DateTime.UtcNow)));
        await RunRetentionAsync(app);
        Assert.Equal(new[] { 6, 9, 12 }, await StepsAsync());
        Assert.False(await app.WithDbAsync(db => db.ArtifactChunks.AnyAsync(c => c.Sha256 == weights)), "the pruned checkpoint's weights should be collected");
    }

    private async Task<JsonNode> TrainAsync(HttpClient client, object request)
    {
        var job = await client.PostJsonAsync("/v1/fine_tuning/jobs", request);
        var id = job["id"]!.GetValue<string>();
        var done = await Eventually.UntilAsync(() => client.GetJsonAsync($"/v1/fine_tuning/jobs/{id}"),
            j => j["status"]!.GetValue<string>() is "succeeded" or "failed" or "cancelled", TimeSpan.FromMinutes(4), TimeSpan.FromMilliseconds(200));
        Assert.True(done["status"]!.GetValue<string>() == "succeeded", done.ToJsonString());
        return done;
    }

    private static Task<HttpResponseMessage> ChatAsync(HttpClient client, string model) =>
        client.PostAsJsonAsync("/v1/chat/completions", new { model, max_tokens = 4, messages = new[] { new { role = "user", content = "What is 2 plus 3?" } } });

    /// <summary>Triggers the recurring retention job through Hangfire and waits until the API host's server ran it.</summary>
    private static async Task RunRetentionAsync(ApiFactory api)
    {
        var storage = api.Services.GetRequiredService<JobStorage>();
        string? LastJob()
        {
            using var connection = storage.GetConnection();
            return connection.GetRecurringJobs([ArtifactRetentionJob.RecurringJobId]).Single().LastJobId;
        }
        string? StateOf(string? jobId)
        {
            if (jobId is null) return null;
            using var connection = storage.GetConnection();
            return connection.GetStateData(jobId)?.Name;
        }
        var previous = LastJob();
        api.Services.GetRequiredService<IRecurringJobManager>().Trigger(ArtifactRetentionJob.RecurringJobId);
        var (job, state) = await Eventually.UntilAsync(() =>
            {
                var last = LastJob();
                return Task.FromResult((last, last == previous ? null : StateOf(last)));
            },
            s => s.Item2 is "Succeeded" or "Failed", TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(100));
        Assert.True(state == "Succeeded", $"retention job {job}: {state}");
    }

    private static async Task ExpectModelNotFoundAsync(HttpResponseMessage response) =>
        Assert.Equal("model_not_found", (await response.ErrorAsync(404))["code"]!.GetValue<string>());

    /// <summary>
    /// Checks the weights against Hugging Face's conventions for this architecture, reading the safetensors header
    /// itself (8-byte little-endian length, JSON of name → dtype, shape, data_offsets): every key transformers'
    /// Qwen2/Llama classes expect, with the shape <c>config.json</c> implies and its <c>torch_dtype</c>, packed back to back.
    /// </summary>
    private static void AssertHuggingFaceWeights(JsonNode config, byte[] safetensors)
    {
        int Int(string key) => config[key]!.GetValue<int>();
        var (vocab, hidden, intermediate, layers) = (Int("vocab_size"), Int("hidden_size"), Int("intermediate_size"), Int("num_hidden_layers"));
        var heads = Int("num_attention_heads");
        var kvHeads = config["num_key_value_heads"]?.GetValue<int>() ?? heads;
        var headDim = config["head_dim"]?.GetValue<int>() ?? hidden / heads;
        var qkvBias = config["model_type"]!.GetValue<string>() == "qwen2";
        var expected = new Dictionary<string, long[]> { ["model.embed_tokens.weight"] = [vocab, hidden], ["model.norm.weight"] = [hidden] };
        if (config["tie_word_embeddings"]?.GetValue<bool>() != true) expected["lm_head.weight"] = [vocab, hidden];
        for (var i = 0; i < layers; i++)
        {
            var p = $"model.layers.{i}";
            expected[$"{p}.input_layernorm.weight"] = [hidden];
            expected[$"{p}.post_attention_layernorm.weight"] = [hidden];
            expected[$"{p}.self_attn.q_proj.weight"] = [heads * headDim, hidden];
            expected[$"{p}.self_attn.k_proj.weight"] = [kvHeads * headDim, hidden];
            expected[$"{p}.self_attn.v_proj.weight"] = [kvHeads * headDim, hidden];
            expected[$"{p}.self_attn.o_proj.weight"] = [hidden, heads * headDim];
            if (qkvBias)
            {
                expected[$"{p}.self_attn.q_proj.bias"] = [heads * headDim];
                expected[$"{p}.self_attn.k_proj.bias"] = [kvHeads * headDim];
                expected[$"{p}.self_attn.v_proj.bias"] = [kvHeads * headDim];
            }
            expected[$"{p}.mlp.gate_proj.weight"] = [intermediate, hidden];
            expected[$"{p}.mlp.up_proj.weight"] = [intermediate, hidden];
            expected[$"{p}.mlp.down_proj.weight"] = [hidden, intermediate];
        }

        var dtype = config["torch_dtype"]!.GetValue<string>() switch { "float32" => "F32", "bfloat16" => "BF16", "float16" => "F16", var other => other };
        var tensors = SafetensorsHeader(safetensors);
        Assert.Equal(expected.Keys.Order(), tensors.Keys.Order());
        foreach (var (name, shape) in expected)
        {
            Assert.Equal(shape, tensors[name].Shape);
            Assert.Equal(dtype, tensors[name].DType);
        }
    }

    private sealed record TensorHeader(string DType, long[] Shape, long Begin, long End);

    /// <summary>The header's tensors, after checking that their byte ranges tile the data section exactly.</summary>
    private static Dictionary<string, TensorHeader> SafetensorsHeader(byte[] file)
    {
        var headerLength = (long)BinaryPrimitives.ReadUInt64LittleEndian(file);
        var header = JsonNode.Parse(Encoding.UTF8.GetString(file, 8, (int)headerLength))!.AsObject();
        var tensors = header.Where(p => p.Key != "__metadata__").ToDictionary(p => p.Key, p => new TensorHeader(
            p.Value!["dtype"]!.GetValue<string>(),
            p.Value["shape"]!.AsArray().Select(d => d!.GetValue<long>()).ToArray(),
            p.Value["data_offsets"]![0]!.GetValue<long>(),
            p.Value["data_offsets"]![1]!.GetValue<long>()));
        var offset = 0L;
        foreach (var tensor in tensors.Values.OrderBy(t => t.Begin))
        {
            Assert.Equal(offset, tensor.Begin);
            var bytesPerElement = tensor.DType switch { "F32" => 4, "BF16" or "F16" => 2, _ => throw new InvalidDataException(tensor.DType) };
            Assert.Equal(tensor.Shape.Aggregate(1L, (a, b) => a * b) * bytesPerElement, tensor.End - tensor.Begin);
            offset = tensor.End;
        }
        Assert.Equal(file.Length - 8 - headerLength, offset);
        return tensors;
    }

    private static Dictionary<string, byte[]> ReadTar(byte[] archive)
    {
        var files = new Dictionary<string, byte[]>();
        using var reader = new TarReader(new MemoryStream(archive));
        while (reader.GetNextEntry() is { } entry)
        {
            Assert.Equal(TarEntryType.RegularFile, entry.EntryType);
            using var content = new MemoryStream();
            entry.DataStream?.CopyTo(content);
            files.Add(entry.Name, content.ToArray());
        }
        return files;
    }

    /// <summary>The file names GNU tar extracts (an independent reader of the archive format).</summary>
    private static List<string> ExtractWithGnuTar(byte[] archive)
    {
        using var scratch = new TempFolder();
        var path = Path.Combine(scratch.Path, "model.tar");
        File.WriteAllBytes(path, archive);
        var into = Directory.CreateDirectory(Path.Combine(scratch.Path, "out")).FullName;
        using var tar = Process.Start(new ProcessStartInfo("tar", ["-xf", path, "-C", into]) { RedirectStandardError = true })!;
        var errors = tar.StandardError.ReadToEnd();
        tar.WaitForExit();
        Assert.True(tar.ExitCode == 0, errors);
        return Directory.EnumerateFiles(into, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(into, f)).ToList();
    }

    private sealed class TempFolder : IDisposable, IAsyncDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("fts-export-test-").FullName;
        public void Dispose() => Directory.Delete(Path, recursive: true);
        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
