using System.ClientModel;
using System.ClientModel.Primitives;
using System.Text.Json.Nodes;
using Domain = FineTuneService.Core.Domain;
using FineTuneService.Service.Tests.Infrastructure;
using OpenAI;
using OpenAI.Files;
using OpenAI.FineTuning;

namespace FineTuneService.Service.Tests.Api;

[Collection(PostgresCollection.Name)]
public sealed class ModelsAndSdkTests(PostgresServer server, SharedApi shared) : IClassFixture<SharedApi>, IAsyncLifetime
{
    private ApiFactory _api = null!;

    public async Task InitializeAsync() => _api = await shared.GetAsync(server);
    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task Models_list_base_models_and_only_the_callers_usable_fine_tuned_and_checkpoint_models()
    {
        var (ownerId, _, owner) = await _api.CreateTenantAsync("models-owner");
        var (_, _, other) = await _api.CreateTenantAsync("models-other");
        string Name(string job) => $"ft:{ApiFactory.BaseModelId}:{ownerId}:bot:{job}";
        var visible = Name("ftjob-visible");
        await _api.WithDbAsync(async db =>
        {
            db.Jobs.Add(SucceededJob(ownerId, "ftjob-visible", visible, Domain.ReviewState.Approved));
            db.Jobs.Add(SucceededJob(ownerId, "ftjob-held", Name("ftjob-held"), Domain.ReviewState.Held));
            db.Jobs.Add(SucceededJob(ownerId, "ftjob-rejected", Name("ftjob-rejected"), Domain.ReviewState.Rejected));
            db.Jobs.Add(SucceededJob(ownerId, "ftjob-deleted", Name("ftjob-deleted"), Domain.ReviewState.NotRequired, j => j.ModelDeletedAt = DateTime.UtcNow));
            db.Jobs.Add(SucceededJob(ownerId, "ftjob-failed", Name("ftjob-failed"), Domain.ReviewState.NotRequired, j => j.Status = Domain.JobStatus.Failed));
            foreach (var job in new[] { "ftjob-visible", "ftjob-held", "ftjob-rejected", "ftjob-deleted", "ftjob-failed" })
            {
                db.JobCheckpoints.Add(Checkpoint(job, Name(job), 2, weights: true));
                db.JobCheckpoints.Add(Checkpoint(job, Name(job), 3, weights: false)); // a resume state is no model
            }
            return await db.SaveChangesAsync();
        });

        var ownerModels = Ids(await owner.GetJsonAsync("/v1/models"));
        Assert.Equal([ApiFactory.BaseModelId, visible, $"{visible}:ckpt-step-2"], ownerModels);
        Assert.Equal([ApiFactory.BaseModelId], Ids(await other.GetJsonAsync("/v1/models")));
        Assert.Equal(ownerId, (await owner.GetJsonAsync($"/v1/models/{visible}"))["owned_by"]!.GetValue<string>());
        Assert.Equal(ownerId, (await owner.GetJsonAsync($"/v1/models/{visible}:ckpt-step-2"))["owned_by"]!.GetValue<string>());
        Assert.Equal("system", (await owner.GetJsonAsync($"/v1/models/{ApiFactory.BaseModelId}"))["owned_by"]!.GetValue<string>());

        // Every hidden model answers exactly like one that never existed.
        string[] hidden =
        [
            $"{visible}:ckpt-step-3", Name("ftjob-never"),
            .. new[] { "ftjob-held", "ftjob-rejected", "ftjob-deleted", "ftjob-failed" }.SelectMany(j => new[] { Name(j), $"{Name(j)}:ckpt-step-2" }),
        ];
        foreach (var id in hidden)
        {
            var error = await (await owner.GetAsync($"/v1/models/{id}")).ErrorAsync(404);
            Assert.Equal("model_not_found", error["code"]!.GetValue<string>());
            Assert.Equal($"The model '{id}' does not exist or you do not have access to it.", error["message"]!.GetValue<string>());
        }
        foreach (var id in new[] { visible, $"{visible}:ckpt-step-2" })
            Assert.Equal("model_not_found", (await (await other.GetAsync($"/v1/models/{id}")).ErrorAsync(404))["code"]!.GetValue<string>());

        static List<string> Ids(JsonNode list) => list["data"]!.AsArray().Select(m => m!["id"]!.GetValue<string>()).ToList();
    }

    [Fact]
    public async Task The_official_openai_sdk_uploads_a_file_and_creates_and_retrieves_a_job()
    {
        var (_, key, _) = await _api.CreateTenantAsync("sdk");
        var client = new OpenAIClient(new ApiKeyCredential(key), new OpenAIClientOptions
        {
            Endpoint = new Uri(_api.Server.BaseAddress, "/v1"),
            Transport = new HttpClientPipelineTransport(_api.CreateClient()),
        });

        var files = client.GetOpenAIFileClient();
        OpenAIFile file = await files.UploadFileAsync(BinaryData.FromString(Datasets.ValidChat()), "sdk.jsonl", FileUploadPurpose.FineTune);
        Assert.StartsWith("file-", file.Id);
        file = await Eventually.UntilAsync(async () => (OpenAIFile)await files.GetFileAsync(file.Id),
            f => f.Status != FileStatus.Uploaded, TimeSpan.FromSeconds(30));
        Assert.Equal(FileStatus.Processed, file.Status);

#pragma warning disable OPENAI001 // fine-tuning client is marked experimental in the SDK
        var fineTuning = client.GetFineTuningClient();
        var job = await fineTuning.FineTuneAsync(ApiFactory.BaseModelId, file.Id, waitUntilCompleted: false,
            new FineTuningOptions { Suffix = "sdk", Seed = 7 });
        Assert.StartsWith("ftjob-", job.JobId);
        Assert.Equal(FineTuningStatus.Queued, job.Status);

        var again = await fineTuning.GetJobAsync(job.JobId);
        Assert.Equal(job.JobId, again.JobId);
        Assert.Equal(ApiFactory.BaseModelId, again.BaseModel);
        Assert.Equal(file.Id, again.TrainingFileId);
        Assert.Equal("sdk", again.UserProvidedSuffix);
        Assert.Equal(7, again.Seed);
        Assert.False(again.HasCompleted);

        // A paused job reads "paused", as OpenAI's pause endpoint answers it, and the SDK still reads the job.
        var http = _api.ClientWithKey(key);
        (await http.PostAsync($"/v1/fine_tuning/jobs/{job.JobId}/pause", null)).EnsureSuccessStatusCode();
        var paused = await fineTuning.GetJobAsync(job.JobId);
        Assert.Equal("paused", paused.Status.ToString());
        Assert.False(paused.HasCompleted);
#pragma warning restore OPENAI001
    }

    private static Domain.FineTuningJob SucceededJob(string tenantId, string id, string model, Domain.ReviewState review,
        Action<Domain.FineTuningJob>? configure = null)
    {
        var job = new Domain.FineTuningJob
        {
            Id = id, TenantId = tenantId, Model = ApiFactory.BaseModelId, TrainingFileId = "file-x", Status = Domain.JobStatus.Succeeded,
            FineTunedModel = model, Review = review, FinishedAt = DateTime.UtcNow,
            ResultArtifactSha256 = new string('c', 64),
        };
        configure?.Invoke(job);
        return job;
    }

    private static Domain.JobCheckpoint Checkpoint(string jobId, string model, int step, bool weights) => new()
    {
        Id = Domain.Ids.Checkpoint(), JobId = jobId, StepNumber = step, FineTunedModelCheckpoint = $"{model}:ckpt-step-{step}",
        Metrics = new JsonObject { ["step"] = step }, ResumeStateSha256 = new string('d', 64),
        WeightsArtifactSha256 = weights ? new string('e', 64) : null,
    };
}
