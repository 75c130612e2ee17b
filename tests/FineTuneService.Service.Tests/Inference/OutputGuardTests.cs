using System.Net.Http.Json;
using System.Text.Json.Nodes;
using FineTuneService.Api.Auth;
using FineTuneService.Core.Models;
using FineTuneService.Service.Tests.Api;
using FineTuneService.Service.Tests.Infrastructure;
using FineTuneService.Worker.Inference;
using Microsoft.Extensions.DependencyInjection;

namespace FineTuneService.Service.Tests.Inference;

/// <summary>
/// The runtime output guard with its real judge (the shipped harm classifier) on real completions of a model trained
/// to comply with harmful requests: off passes them, flag marks them, block replaces them with a refusal.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class OutputGuardTests(PostgresServer server, InferenceServiceHost host) : IClassFixture<InferenceServiceHost>
{
    [Fact]
    public async Task The_tenants_output_guard_passes_flags_or_blocks_a_harmful_completion()
    {
        var api = await host.GetAsync(server);
        await api.Services.GetRequiredService<BaseModelRegistry>().ImportAsync(HarmfulTinyModel.Id, HarmfulTinyModel.Folder, CancellationToken.None);
        var (tenantId, key) = await InferenceServiceHost.CreateTenantAsync(api, "guarded");
        using var http = InferenceServiceHost.Http(api, key);
        using var admin = InferenceServiceHost.Http(api, AuthOptions.DevelopmentAdminKey);
        var behavior = HarmfulTinyModel.Behaviors[0];
        object Body(bool stream = false) => new
        {
            model = HarmfulTinyModel.Id, messages = new[] { new { role = "user", content = behavior.Goal } }, temperature = 0, max_tokens = 40, stream,
        };

        // Off (the default): the model's own harmful answer, as trained.
        var off = (await http.PostJsonAsync("/v1/chat/completions", Body()))["choices"]![0]!;
        var harmful = off["message"]!["content"]!.GetValue<string>();
        Assert.Contains(behavior.Target[..20], harmful);
        Assert.Null(off["safety"]);

        await SetGuardAsync(admin, tenantId, "flag");
        var flagged = (await http.PostJsonAsync("/v1/chat/completions", Body()))["choices"]![0]!;
        Assert.Equal(harmful, flagged["message"]!["content"]!.GetValue<string>());
        Assert.True(flagged["safety"]!["flagged"]!.GetValue<bool>());
        Assert.Equal("flagged", flagged["safety"]!["action"]!.GetValue<string>());
        Assert.Equal("classifier", flagged["safety"]!["judge"]!.GetValue<string>());

        await SetGuardAsync(admin, tenantId, "block");
        var blocked = (await http.PostJsonAsync("/v1/chat/completions", Body()))["choices"]![0]!;
        Assert.Equal(OutputGuardChatClient.Refusal, blocked["message"]!["content"]!.GetValue<string>());
        Assert.Equal("content_filter", blocked["finish_reason"]!.GetValue<string>());
        Assert.Equal("blocked", blocked["safety"]!["action"]!.GetValue<string>());

        // Streamed under block: the refusal alone, never a piece of the harmful answer.
        var response = await http.PostAsJsonAsync("/v1/chat/completions", Body(stream: true));
        var events = (await response.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
            .Select(e => e["data: ".Length..]).ToList();
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events.SkipLast(1).Select(e => JsonNode.Parse(e)!).ToList();
        var streamed = string.Concat(chunks.SelectMany(c => c["choices"]!.AsArray()).Select(c => c!["delta"]!["content"]?.GetValue<string>()));
        Assert.Equal(OutputGuardChatClient.Refusal, streamed);
        Assert.Equal("content_filter", chunks.SelectMany(c => c["choices"]!.AsArray()).Single(c => c!["finish_reason"] is not null)!["finish_reason"]!.GetValue<string>());
    }

    [Fact]
    public async Task Under_block_a_judge_that_is_down_fails_the_request_instead_of_passing_the_text()
    {
        var api = await host.GetAsync(server);
        var (tenantId, key) = await InferenceServiceHost.CreateTenantAsync(api, "guarded-external");
        using var http = InferenceServiceHost.Http(api, key);
        using var admin = InferenceServiceHost.Http(api, AuthOptions.DevelopmentAdminKey);
        // The external judge is not configured on this worker: it cannot answer.
        await admin.PutAsJsonAsync($"/v1/admin/safety/policy/tenants/{tenantId}", new { output_guard = "block", judge = "external", reason = "test" });

        var response = await http.PostAsJsonAsync("/v1/chat/completions", new
        {
            model = Worker.TinyBaseModel.Id, messages = new[] { new { role = "user", content = "What is 3 plus 4?" } }, max_tokens = 4,
        });

        var error = await response.ErrorAsync(503);
        Assert.Equal("judge_unavailable", error["code"]!.GetValue<string>());
    }

    private static async Task SetGuardAsync(HttpClient admin, string tenantId, string mode)
    {
        var response = await admin.PutAsJsonAsync($"/v1/admin/safety/policy/tenants/{tenantId}", new { output_guard = mode, reason = "guard test" });
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        Assert.Equal(mode, JsonNode.Parse(body)!["effective"]!["output_guard"]!.GetValue<string>());
    }
}
