using System.ClientModel;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Service.Tests.Api;
using FineTuneService.Service.Tests.Infrastructure;
using FineTuneService.Service.Tests.Worker;
using Microsoft.EntityFrameworkCore;
using OpenAI.Chat;

namespace FineTuneService.Service.Tests.Inference;

/// <summary>
/// Chat completions as a tenant uses them: the official OpenAI .NET SDK over the API's real socket, forwarded by the
/// API (YARP) to the worker's inference server, which decodes with the engine's continuous batcher.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ChatCompletionsTests(PostgresServer server, InferenceServiceHost host) : IClassFixture<InferenceServiceHost>
{
    private static readonly ChatMessage[] Question = [new UserChatMessage("What is 3 plus 4?")];

    [Fact]
    public async Task A_base_model_answers_with_usage_and_greedy_decoding_is_deterministic()
    {
        var api = await host.GetAsync(server);
        var (_, key) = await InferenceServiceHost.CreateTenantAsync(api, "chat-basic");
        var chat = InferenceServiceHost.Sdk(api, key).GetChatClient(TinyBaseModel.Id);
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 12 };

        ChatCompletion first = await chat.CompleteChatAsync(Question, options);
        ChatCompletion second = await chat.CompleteChatAsync(Question, options);

        Assert.Equal(first.Content[0].Text, second.Content[0].Text);
        Assert.True(first.Usage.InputTokenCount > 5);
        Assert.InRange(first.Usage.OutputTokenCount, 1, 12);
        Assert.Equal(first.Usage.InputTokenCount + first.Usage.OutputTokenCount, first.Usage.TotalTokenCount);
        Assert.Contains(first.FinishReason, new[] { ChatFinishReason.Stop, ChatFinishReason.Length });
        Assert.Equal(TinyBaseModel.Id, first.Model);
    }

    [Fact]
    public async Task Streaming_yields_several_chunks_a_finish_reason_and_the_usage_chunk()
    {
        var api = await host.GetAsync(server);
        var (_, key) = await InferenceServiceHost.CreateTenantAsync(api, "chat-stream");
        var chat = InferenceServiceHost.Sdk(api, key).GetChatClient(TinyBaseModel.Id);
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 10 };

        var updates = new List<StreamingChatCompletionUpdate>();
        await foreach (var update in chat.CompleteChatStreamingAsync(Question, options)) updates.Add(update);
        ChatCompletion whole = await chat.CompleteChatAsync(Question, options);

        Assert.True(updates.Count(u => u.ContentUpdate.Count > 0) >= 2, $"only {updates.Count} updates");
        Assert.Single(updates, u => u.FinishReason is not null);
        var usage = Assert.Single(updates, u => u.Usage is not null).Usage;
        Assert.Equal(whole.Usage.OutputTokenCount, usage.OutputTokenCount);
        Assert.Equal(whole.Content[0].Text, string.Concat(updates.SelectMany(u => u.ContentUpdate).Select(p => p.Text)));
    }

    [Fact]
    public async Task Sampling_with_a_seed_repeats_and_n_gives_several_choices_and_stop_ends_the_text()
    {
        var api = await host.GetAsync(server);
        var (_, key) = await InferenceServiceHost.CreateTenantAsync(api, "chat-sampling");
        using var http = InferenceServiceHost.Http(api, key);
        object Body(object? stop = null) => new
        {
            model = TinyBaseModel.Id, messages = new[] { new { role = "user", content = new object[] { new { type = "text", text = "What is 3 plus 4?" } } } },
            temperature = 1.5, top_p = 0.95, seed = 11, n = 3, max_completion_tokens = 12, stop,
        };

        var first = await http.PostJsonAsync("/v1/chat/completions", Body());
        var again = await http.PostJsonAsync("/v1/chat/completions", Body());

        var texts = first["choices"]!.AsArray().Select(c => c!["message"]!["content"]!.GetValue<string>()).ToList();
        Assert.Equal(3, texts.Count);
        Assert.Equal(texts, again["choices"]!.AsArray().Select(c => c!["message"]!["content"]!.GetValue<string>()));
        Assert.Equal([0, 1, 2], first["choices"]!.AsArray().Select(c => c!["index"]!.GetValue<int>()));

        // A stop sequence taken from the sampled text: the answer ends right before it.
        var longest = texts.OrderByDescending(t => t.Length).First();
        var stop = longest.Substring(longest.Length / 2, Math.Min(2, longest.Length - longest.Length / 2));
        var stopped = await http.PostJsonAsync("/v1/chat/completions", Body(stop));
        foreach (var choice in stopped["choices"]!.AsArray())
        {
            var text = choice!["message"]!["content"]!.GetValue<string>();
            Assert.DoesNotContain(stop, text);
            var full = texts[choice["index"]!.GetValue<int>()];
            Assert.StartsWith(text, full);
            if (full.Contains(stop)) Assert.Equal("stop", choice["finish_reason"]!.GetValue<string>());
        }
    }

    [Theory]
    [InlineData("""{"model": "tiny-test", "messages": []}""", "messages")]
    [InlineData("""{"model": "tiny-test"}""", "messages")]
    [InlineData("""{"model": "tiny-test", "messages": [{"role": "wizard", "content": "hi"}]}""", "messages[0].role")]
    [InlineData("""{"model": "tiny-test", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}""", "messages[0].content[0]")]
    [InlineData("""{"model": "tiny-test", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}""", "max_tokens")]
    [InlineData("""{"model": "tiny-test", "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": "many"}""", "max_completion_tokens")]
    [InlineData("""{"model": "tiny-test", "messages": [{"role": "user", "content": "hi"}], "temperature": 3}""", "temperature")]
    [InlineData("""{"model": "tiny-test", "messages": [{"role": "user", "content": "hi"}], "stop": ["a", "b", "c", "d", "e"]}""", "stop")]
    [InlineData("""{"model": "tiny-test", "messages": [{"role": "user", "content": "hi"}], "n": 0}""", "n")]
    [InlineData("""{"messages": [{"role": "user", "content": "hi"}]}""", "model")]
    [InlineData("""{"model": "tiny-test", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1000}""", "max_tokens")]
    [InlineData("""not json""", null)]
    public async Task Bad_requests_are_400s_in_the_openai_envelope_naming_the_param(string body, string? param)
    {
        var api = await host.GetAsync(server);
        var (_, key) = await InferenceServiceHost.CreateTenantAsync(api, "chat-bad");
        using var http = InferenceServiceHost.Http(api, key);

        var response = await http.PostAsync("/v1/chat/completions", new StringContent(body, System.Text.Encoding.UTF8, "application/json"));

        var error = await response.ErrorAsync(400);
        Assert.Equal(param, error["param"]?.GetValue<string>());
        Assert.Equal("invalid_request_error", error["type"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_prompt_longer_than_the_context_is_a_400_from_the_model_side()
    {
        var api = await host.GetAsync(server);
        var (_, key) = await InferenceServiceHost.CreateTenantAsync(api, "chat-long");
        using var http = InferenceServiceHost.Http(api, key);
        var longText = string.Join(' ', Enumerable.Repeat("What is 3 plus 4?", 60));

        var response = await http.PostAsJsonAsync("/v1/chat/completions", new { model = TinyBaseModel.Id, messages = new[] { new { role = "user", content = longText } } });

        var error = await response.ErrorAsync(400);
        Assert.Equal("messages", error["param"]!.GetValue<string>());
        Assert.Equal("context_length_exceeded", error["code"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_fine_tuned_model_and_its_checkpoint_answer_their_tenant_and_are_404_for_everyone_else()
    {
        var api = await host.GetAsync(server);
        var (ownerId, ownerKey) = await InferenceServiceHost.CreateTenantAsync(api, "chat-owner");
        var (_, otherKey) = await InferenceServiceHost.CreateTenantAsync(api, "chat-other");
        using var owner = InferenceServiceHost.Http(api, ownerKey);
        using var other = InferenceServiceHost.Http(api, otherKey);

        var file = await owner.UploadValidatedAsync(TinyBaseModel.Jsonl(12));
        var job = await owner.PostJsonAsync("/v1/fine_tuning/jobs", new
        {
            model = TinyBaseModel.Id, training_file = file["id"]!.GetValue<string>(), suffix = "chat", seed = 3,
            hyperparameters = new { n_epochs = 1, batch_size = 2 },
        });
        var jobId = job["id"]!.GetValue<string>();
        job = await Eventually.UntilAsync(() => owner.GetJsonAsync($"/v1/fine_tuning/jobs/{jobId}"),
            j => j["status"]!.GetValue<string>() is "succeeded" or "failed" or "cancelled", TimeSpan.FromSeconds(180), TimeSpan.FromMilliseconds(200));
        Assert.True(job["status"]!.GetValue<string>() == "succeeded", job.ToJsonString());
        var model = job["fine_tuned_model"]!.GetValue<string>();
        var checkpoints = await owner.GetJsonAsync($"/v1/fine_tuning/jobs/{jobId}/checkpoints");
        // 6 steps in one epoch: the listed checkpoint is the epoch's (the resume state at step 3 is not a model).
        var checkpoint = checkpoints["data"]!.AsArray().Single()!["fine_tuned_model_checkpoint"]!.GetValue<string>();
        Assert.EndsWith(":ckpt-step-6", checkpoint);

        foreach (var id in new[] { model, checkpoint })
        {
            ChatCompletion answer = await InferenceServiceHost.Sdk(api, ownerKey).GetChatClient(id)
                .CompleteChatAsync(Question, new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 8 });
            Assert.True(answer.Usage.OutputTokenCount > 0, id);
            Assert.Equal(id, answer.Model);
        }

        var notFound = await NotFoundAsync(other, model);
        Assert.Equal(notFound, await NotFoundAsync(other, checkpoint));
        Assert.Equal(notFound, await NotFoundAsync(other, "ft:tiny-test:nobody:x:ftjob-never-existed"));

        // Held back by the safety review, then rejected: hidden from the owner too, with the same answer. The API has
        // just routed these names (ModelRoutes), so this 404 comes from the inference server's own access check.
        await SetReviewAsync(api, jobId, ReviewState.Held);
        Assert.Equal(notFound, await NotFoundAsync(owner, model));
        Assert.Equal(notFound, await NotFoundAsync(owner, checkpoint));
        await SetReviewAsync(api, jobId, ReviewState.Rejected);
        Assert.Equal(notFound, await NotFoundAsync(owner, model));
        await SetReviewAsync(api, jobId, ReviewState.Approved);
        ChatCompletion approved = await InferenceServiceHost.Sdk(api, ownerKey).GetChatClient(model).CompleteChatAsync(Question);
        Assert.NotNull(approved.Content);

        var sdkError = await Assert.ThrowsAsync<ClientResultException>(() =>
            InferenceServiceHost.Sdk(api, otherKey).GetChatClient(model).CompleteChatAsync(Question));
        Assert.Equal(404, sdkError.Status);
    }

    /// <summary>The 404's error object without the model id, so answers for different ids compare equal.</summary>
    private static async Task<string> NotFoundAsync(HttpClient client, string model)
    {
        var response = await client.PostAsJsonAsync("/v1/chat/completions", new { model, messages = new[] { new { role = "user", content = "hi" } } });
        var error = await response.ErrorAsync(404);
        Assert.Equal("model_not_found", error["code"]!.GetValue<string>());
        Assert.Equal("model", error["param"]!.GetValue<string>());
        return error["type"]!.GetValue<string>() + ": " + error["message"]!.GetValue<string>().Replace(model, "<model>");
    }

    private static async Task SetReviewAsync(ApiFactory api, string jobId, ReviewState review) =>
        await api.WithDbAsync(db => db.Jobs.Where(j => j.Id == jobId).ExecuteUpdateAsync(set => set.SetProperty(j => j.Review, review)));

    [Fact]
    public async Task The_api_skips_dead_endpoints_and_forwards_to_the_live_one()
    {
        var api = await host.GetAsync(server);
        var (_, key) = await InferenceServiceHost.CreateTenantAsync(api, "chat-endpoints");
        await api.WithDbAsync(async db =>
        {
            // One that stopped heartbeating, one that claims to be alive but refuses connections.
            db.InferenceEndpoints.Add(new InferenceEndpoint
            {
                Id = "dead", Url = "http://127.0.0.1:9", AccessToken = "x", Devices = "cpu", HeartbeatAt = DateTime.UtcNow.AddMinutes(-5), Load = -1,
            });
            db.InferenceEndpoints.Add(new InferenceEndpoint { Id = "unreachable", Url = "http://127.0.0.1:9", AccessToken = "x", Devices = "cpu", Load = -1 });
            return await db.SaveChangesAsync();
        });
        try
        {
            await Task.Delay(1100); // past the directory's refresh
            ChatCompletion answer = await InferenceServiceHost.Sdk(api, key).GetChatClient(TinyBaseModel.Id)
                .CompleteChatAsync(Question, new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 4 });
            Assert.True(answer.Usage.OutputTokenCount > 0);
        }
        finally
        {
            await api.WithDbAsync(db => db.InferenceEndpoints.Where(e => e.Id == "dead" || e.Id == "unreachable").ExecuteDeleteAsync());
        }
    }

    [Fact]
    public async Task The_worker_registers_its_endpoint_and_heartbeats_the_loaded_models()
    {
        var api = await host.GetAsync(server);
        var (_, key) = await InferenceServiceHost.CreateTenantAsync(api, "chat-registry");
        await InferenceServiceHost.Sdk(api, key).GetChatClient(TinyBaseModel.Id)
            .CompleteChatAsync(Question, new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 2 });
        var baseSha = await api.WithDbAsync(db => db.BaseModels.Where(m => m.Id == TinyBaseModel.Id).Select(m => m.ArtifactSha256).SingleAsync());

        var endpoint = await Eventually.UntilAsync(
            () => api.WithDbAsync(db => db.InferenceEndpoints.AsNoTracking().Where(e => e.Load >= 0).SingleAsync()),
            e => e.LoadedModels.Contains(baseSha), TimeSpan.FromSeconds(10));

        Assert.Contains(baseSha, endpoint.LoadedModels);
        Assert.StartsWith("http://127.0.0.1:", endpoint.Url);
        Assert.True(DateTime.UtcNow - endpoint.HeartbeatAt < TimeSpan.FromSeconds(10));
    }
}
