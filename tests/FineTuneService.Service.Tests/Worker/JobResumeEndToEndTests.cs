using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using FineTuneService.Api.Auth;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Models;
using FineTuneService.Service.Tests.Api;
using FineTuneService.Service.Tests.Infrastructure;
using FineTuneService.Worker.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace FineTuneService.Service.Tests.Worker;

/// <summary>
/// Pause and resume as a tenant drives them, from <c>POST /pause</c> and <c>POST /resume</c> to the worker going on
/// at the checkpoint it saved: the API host with the worker's device server in the same process, real PostgreSQL,
/// Hangfire and TorchSharp. A <see cref="TrainingStepGate"/> holds training after step 1, so the pause lands there
/// on any machine.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class JobResumeEndToEndTests(PostgresServer server)
{
    [Fact]
    public async Task A_job_paused_through_the_api_resumes_through_the_api_at_its_checkpoint()
    {
        var cache = Directory.CreateTempSubdirectory("fts-resume-cache-").FullName;
        var gate = new TrainingStepGate();
        await using var api = new ApiFactory(await server.CreateDatabaseAsync(), settings: new TestWorkerSettings(cache)
        {
            ["Worker:CheckpointEverySteps"] = "50",
            ["Worker:MetricsEverySteps"] = "1",
        });
        await using var app = api.WithWebHostBuilder(web => web.ConfigureServices(services => services
            .AddFineTuneWorker()
            .ConfigureDbContext<FineTuneDbContext>(options => options.AddInterceptors(gate))));
        try
        {
            await app.Services.GetRequiredService<BaseModelRegistry>().ImportAsync(TinyBaseModel.Id, TinyBaseModel.Folder, CancellationToken.None);
            var client = await TenantClientAsync(app);
            var file = await client.UploadValidatedAsync(TinyBaseModel.Jsonl(24));
            Assert.Equal("processed", file["status"]!.GetValue<string>());

            // 24 examples, batch 4, 4 epochs: 24 steps. Training waits at the gate after step 1.
            gate.Close();
            var created = await client.PostJsonAsync("/v1/fine_tuning/jobs", new
            {
                model = TinyBaseModel.Id,
                training_file = file["id"]!.GetValue<string>(),
                hyperparameters = new { n_epochs = 4, batch_size = 4 },
            });
            var url = $"/v1/fine_tuning/jobs/{created["id"]!.GetValue<string>()}";
            await gate.WaitUntilHeldAsync(TimeSpan.FromSeconds(120));

            var pausing = await client.PostJsonAsync($"{url}/pause");
            Assert.Equal("running", pausing["status"]!.GetValue<string>());
            gate.Open();
            var paused = await WaitForAsync(app, client, url, JobStatus.Paused);
            Assert.Null(paused["fine_tuned_model"]);
            // The pause saved a resume state at step 1 (not a listed checkpoint: those are the epochs' models).
            var jobId = created["id"]!.GetValue<string>();
            await using (var scope = app.Services.CreateAsyncScope())
            {
                var db = scope.ServiceProvider.GetRequiredService<FineTuneDbContext>();
                Assert.Equal([1], await db.JobCheckpoints.Where(c => c.JobId == jobId && c.ResumeStateSha256 != null).Select(c => c.StepNumber).ToListAsync());
            }
            Assert.Empty((await client.GetJsonAsync($"{url}/checkpoints"))["data"]!.AsArray());

            var resumed = await client.PostJsonAsync($"{url}/resume");
            Assert.Equal("queued", resumed["status"]!.GetValue<string>());
            var done = await WaitForAsync(app, client, url, JobStatus.Succeeded);
            Assert.NotNull(done["fine_tuned_model"]);

            var events = (await client.GetJsonAsync($"{url}/events?limit=100"))["data"]!.AsArray().Reverse().ToList(); // oldest first
            var messages = events.Select(e => e!["message"]!.GetValue<string>()).ToList();
            Assert.Contains("The job was paused at step 1", messages);
            var resumedAt = messages.FindIndex(m => m.StartsWith("Fine-tuning job resumed on cpu from checkpoint at step 1", StringComparison.Ordinal));
            Assert.True(resumedAt > messages.IndexOf("Job resumed"), string.Join("\n", messages));
            // Step 1 was trained once, before the pause; the resumed run goes on with step 2 and ends at step 24.
            var steps = events.Where(e => e!["type"]!.GetValue<string>() == "metrics").Select(e => e!["data"]!["step"]!.GetValue<int>()).ToList();
            Assert.Equal(Enumerable.Range(1, 24), steps);
        }
        finally
        {
            gate.Open();
            Directory.Delete(cache, recursive: true);
        }
    }

    private static async Task<JsonNode> WaitForAsync(WebApplicationFactory<FineTuneService.Api.ApiEntryPoint> app, HttpClient client,
        string url, JobStatus status)
    {
        var id = url.Split('/')[^1];
        var contexts = app.Services.GetRequiredService<IDbContextFactory<FineTuneDbContext>>();
        var reached = await Eventually.UntilAsync(async () =>
        {
            await using var db = await contexts.CreateDbContextAsync();
            return await db.Jobs.AsNoTracking().Where(j => j.Id == id).Select(j => j.Status).SingleAsync();
        }, s => s == status, TimeSpan.FromSeconds(180), TimeSpan.FromMilliseconds(100));
        Assert.Equal(status, reached);
        return await client.GetJsonAsync(url);
    }

    private static async Task<HttpClient> TenantClientAsync(WebApplicationFactory<FineTuneService.Api.ApiEntryPoint> app)
    {
        var admin = app.CreateClient();
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AuthOptions.DevelopmentAdminKey);
        var response = await admin.PostAsJsonAsync("/v1/admin/tenants", new { name = "resume" });
        response.EnsureSuccessStatusCode();
        var client = app.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer",
            JsonNode.Parse(await response.Content.ReadAsStringAsync())!["api_key"]!.GetValue<string>());
        return client;
    }
}
