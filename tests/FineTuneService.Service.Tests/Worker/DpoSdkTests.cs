using System.ClientModel;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using FineTuneService.Api.Auth;
using FineTuneService.Core.Models;
using FineTuneService.Datasets;
using FineTuneService.Datasets.Corpus;
using FineTuneService.Service.Tests.Api;
using FineTuneService.Service.Tests.Infrastructure;
using FineTuneService.Worker.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;
using OpenAI.Files;
using OpenAI.FineTuning;

namespace FineTuneService.Service.Tests.Worker;

/// <summary>
/// DPO as a tenant runs it through the official OpenAI .NET SDK over a loopback socket, on a few HH-RLHF harmless
/// pairs (shortened to fit the tiny model's 128 positions), with the worker in the same process.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class DpoSdkTests(PostgresServer server)
{
#pragma warning disable OPENAI001 // the SDK marks fine-tuning as experimental
    /// <summary>Single-turn HH-RLHF harmless pairs in OpenAI's preference format, each text cut to 30 characters.</summary>
    private static string PreferenceJsonl(int count)
    {
        static string Cut(string text) => text.Length <= 30 ? text : text[..30];
        var rows = new ShippedData().HhRlhfHarmless()
            .Select(d => (Chosen: HhDialogue.ToMessages(d.Chosen), Rejected: HhDialogue.ToMessages(d.Rejected)))
            .Where(d => d.Chosen.Count == 2 && d.Rejected.Count == 2 && d.Chosen[0].Role == ChatMessage.User && d.Chosen[1].Role == ChatMessage.Assistant)
            .Where(d => Cut(d.Chosen[1].Content) != Cut(d.Rejected[1].Content) && Cut(d.Chosen[1].Content).Trim().Length > 0 && Cut(d.Rejected[1].Content).Trim().Length > 0)
            .Take(count)
            .Select(d => new JsonObject
            {
                ["input"] = new JsonObject { ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = Cut(d.Chosen[0].Content) }) },
                ["preferred_output"] = new JsonArray(new JsonObject { ["role"] = "assistant", ["content"] = Cut(d.Chosen[1].Content) }),
                ["non_preferred_output"] = new JsonArray(new JsonObject { ["role"] = "assistant", ["content"] = Cut(d.Rejected[1].Content) }),
            }.ToJsonString())
            .ToList();
        Assert.Equal(count, rows.Count);
        return string.Join('\n', rows) + "\n";
    }

    [Fact]
    public async Task A_dpo_job_succeeds_through_the_sdk_with_margin_and_reward_accuracy_in_its_events_and_projected_gradients_composes()
    {
        var cache = Directory.CreateTempSubdirectory("fts-dpo-cache-").FullName;
        await using var app = new ApiFactory(await server.CreateDatabaseAsync(), settings: new TestWorkerSettings(cache)
        {
            ["Worker:CheckpointEverySteps"] = "5",
            ["Worker:MetricsEverySteps"] = "1",
            ["Worker:MaxSequenceLength"] = "128",
        }, configureServices: services => services.AddFineTuneWorker());
        app.UseKestrel(0);
        app.StartServer();
        try
        {
            await app.Services.GetRequiredService<BaseModelRegistry>().ImportAsync(TinyBaseModel.Id, TinyBaseModel.Folder, CancellationToken.None);
            var key = await CreateTenantKeyAsync(app, "dpo-owner");
            var sdk = new OpenAIClient(new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri(app.ServerAddress, "/v1") });

            var files = sdk.GetOpenAIFileClient();
            OpenAIFile file = await files.UploadFileAsync(BinaryData.FromString(PreferenceJsonl(10)), "pairs.jsonl", FileUploadPurpose.FineTune);
            file = await Eventually.UntilAsync(async () => (OpenAIFile)await files.GetFileAsync(file.Id),
                f => f.Status != FileStatus.Uploaded, TimeSpan.FromSeconds(30));
            Assert.True(file.Status == FileStatus.Processed, file.StatusDetails);

            using var http = new HttpClient { BaseAddress = app.ServerAddress };
            http.DefaultRequestHeaders.Authorization = new("Bearer", key);
            // The estimate of the same body counts the tokens the DPO trainer will train on: both answers of every pair.
            var estimate = await http.PostJsonAsync("/v1/fine_tuning/jobs/estimate", new
            {
                model = TinyBaseModel.Id, training_file = file.Id, seed = 3,
                method = new { type = "dpo", dpo = new { hyperparameters = new { batch_size = 2, n_epochs = 2 } } },
            });
            Assert.Equal(10, estimate["training_examples"]!.GetValue<int>());
            Assert.Equal(10, estimate["steps"]!.GetValue<int>());

            // 10 pairs, 2 a batch, 2 epochs: 10 steps.
            var fineTuning = sdk.GetFineTuningClient();
            var job = await fineTuning.FineTuneAsync(TinyBaseModel.Id, file.Id, waitUntilCompleted: false, new FineTuningOptions
            {
                Seed = 3,
                // The same pairs held back: enough to see the validation pass fill valid_reward_accuracy.
                ValidationFile = file.Id,
                TrainingMethod = FineTuningTrainingMethod.CreateDirectPreferenceOptimization(
                    betaFactor: HyperparameterBetaFactor.CreateAuto(), batchSize: 2, epochCount: 2, learningRate: HyperparameterLearningRate.CreateAuto()),
            });
            await Eventually.UntilAsync(async () => { await job.UpdateStatusAsync(); return job; },
                j => j.HasCompleted, TimeSpan.FromSeconds(120), TimeSpan.FromMilliseconds(100));
            var body = JsonNode.Parse(job.GetRawResponse().Content.ToString())!;
            Assert.True(job.Status == FineTuningStatus.Succeeded, body.ToJsonString());
            Assert.Equal("dpo", body["method"]!["type"]!.GetValue<string>());
            Assert.Equal(0.1, body["method"]!["dpo"]!["hyperparameters"]!["beta"]!.GetValue<double>()); // "auto" resolved
            Assert.Equal(estimate["trained_tokens"]!.GetValue<long>(), body["trained_tokens"]!.GetValue<long>());

            var events = new List<FineTuningEvent>();
            await foreach (var e in job.GetEventsAsync(new GetEventsOptions { PageSize = 50 })) events.Add(e);
            var metrics = events.Where(e => e.Kind == FineTuningJobEventKind.Metrics).Select(e => JsonNode.Parse(e.Data.ToString())!).ToList();
            Assert.Equal(10, metrics.Count);
            Assert.All(metrics, m =>
            {
                Assert.NotNull(m["reward_margin"]);
                Assert.InRange(m["reward_accuracy"]!.GetValue<double>(), 0, 1);
            });
            var checkpoints = new List<FineTuningCheckpoint>();
            await foreach (var c in job.GetCheckpointsAsync(new GetCheckpointsOptions { PageSize = 10 })) checkpoints.Add(c);
            Assert.NotEmpty(checkpoints);

            // The result file (step_metrics.csv) carries the same reward figures per step as the events.
            var resultFile = Assert.Single(body["result_files"]!.AsArray())!.GetValue<string>();
            var csv = (await http.GetStringAsync($"/v1/files/{resultFile}/content")).TrimEnd('\n').Split('\n').Select(l => l.Split(',')).ToList();
            var header = csv[0];
            Assert.Equal(["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy", "reward_margin", "reward_accuracy", "valid_reward_accuracy"],
                header[..8]);
            var stepRows = csv.Skip(1).Where(r => r[Array.IndexOf(header, "stage")] == "").ToList();
            Assert.Equal(Enumerable.Range(1, 10).Select(s => s.ToString()), stepRows.Select(r => r[0]));
            static double Number(string text) => double.Parse(text, System.Globalization.CultureInfo.InvariantCulture);
            foreach (var m in metrics)
            {
                var row = stepRows.Single(r => r[0] == m["step"]!.GetValue<int>().ToString());
                Assert.Equal(m["reward_margin"]!.GetValue<double>(), Number(row[5]), 5);
                Assert.Equal(m["reward_accuracy"]!.GetValue<double>(), Number(row[6]), 5);
            }
            // Validated every 5 steps (Worker:CheckpointEverySteps): the held-back reward accuracy is filled there only.
            Assert.Equal(["5", "10"], stepRows.Where(r => r[7] != "").Select(r => r[0]));
            Assert.All(stepRows.Where(r => r[7] != ""), r => Assert.InRange(Number(r[7]), 0, 1));

            // projected_gradients acts on the DPO gradients as on SFT ones: the job runs to the end.
            var created = await http.PostAsJsonAsync("/v1/fine_tuning/jobs", JsonNode.Parse($$$$"""
                {"model": "{{{{TinyBaseModel.Id}}}}", "training_file": "{{{{file.Id}}}}", "seed": 3,
                 "method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": 1, "batch_size": 4}}},
                 "safety": {"strategy": "projected_gradients"}}
                """));
            var projected = JsonNode.Parse(await created.Content.ReadAsStringAsync())!;
            Assert.True(created.IsSuccessStatusCode, projected.ToJsonString());
            var done = await Eventually.UntilAsync(
                async () => JsonNode.Parse(await http.GetStringAsync($"/v1/fine_tuning/jobs/{projected["id"]}"))!,
                j => j["status"]!.GetValue<string>() is "succeeded" or "failed" or "cancelled", TimeSpan.FromSeconds(120), TimeSpan.FromMilliseconds(100));
            Assert.True(done["status"]!.GetValue<string>() == "succeeded", done.ToJsonString());
            Assert.Equal(0.2, done["method"]!["dpo"]!["hyperparameters"]!["beta"]!.GetValue<double>());
        }
        finally
        {
            Directory.Delete(cache, recursive: true);
        }
    }

    private static async Task<string> CreateTenantKeyAsync(ApiFactory app, string name)
    {
        using var admin = new HttpClient { BaseAddress = app.ServerAddress };
        admin.DefaultRequestHeaders.Authorization = new("Bearer", AuthOptions.DevelopmentAdminKey);
        var response = await admin.PostAsJsonAsync("/v1/admin/tenants", new { name });
        response.EnsureSuccessStatusCode();
        return JsonNode.Parse(await response.Content.ReadAsStringAsync())!["api_key"]!.GetValue<string>();
    }
#pragma warning restore OPENAI001
}
