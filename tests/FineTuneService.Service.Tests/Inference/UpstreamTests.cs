using FineTuneService.Service.Tests.Api;
using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
using FineTuneService.Service.Tests.Infrastructure;
using FineTuneService.Service.Tests.Worker;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using OpenAI.Chat;

namespace FineTuneService.Service.Tests.Inference;

/// <summary>
/// <c>Inference:Upstream</c>: the worker forwards chats to an OpenAI-compatible server instead of its own engine.
/// The server here is a stub standing in for vLLM (it answers with what it was asked); the built-in engine has its
/// own tests (<see cref="ChatCompletionsTests"/>).
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class UpstreamTests(PostgresServer server)
{
    [Fact]
    public async Task Chats_go_to_the_upstream_server_after_the_apis_access_checks()
    {
        var received = new ConcurrentQueue<JsonNode>();
        await using var stub = await StartStubAsync(received);
        await using var host = new InferenceServiceHost();
        var api = await host.GetAsync(server, settings => settings["Inference:Upstream:BaseAddress"] = $"{stub.Urls.First()}/v1");
        var (_, key) = await InferenceServiceHost.CreateTenantAsync(api, "upstream");
        var chat = InferenceServiceHost.Sdk(api, key).GetChatClient(TinyBaseModel.Id);

        ChatCompletion answer = await chat.CompleteChatAsync([new UserChatMessage("ping")], new ChatCompletionOptions { MaxOutputTokenCount = 7, Temperature = 0 });
        var streamed = new List<string>();
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage("pong")]))
            streamed.AddRange(update.ContentUpdate.Select(p => p.Text));

        Assert.Equal($"upstream {TinyBaseModel.Id}: ping", answer.Content[0].Text);
        Assert.Equal(3, answer.Usage.OutputTokenCount);
        Assert.Equal($"upstream {TinyBaseModel.Id}: pong", string.Concat(streamed));
        var first = received.First();
        Assert.Equal(TinyBaseModel.Id, first["model"]!.GetValue<string>());
        Assert.Equal(7, (first["max_completion_tokens"] ?? first["max_tokens"])!.GetValue<int>());

        // Access is still the API's: an unknown model never reaches the upstream server.
        var count = received.Count;
        using var http = InferenceServiceHost.Http(api, key);
        var response = await http.PostAsync("/v1/chat/completions", new StringContent(
            """{"model": "ft:tiny-test:someone:x:ftjob-1", "messages": [{"role": "user", "content": "hi"}]}""", System.Text.Encoding.UTF8, "application/json"));
        await response.ErrorAsync(404);
        Assert.Equal(count, received.Count);
    }

    /// <summary>A minimal OpenAI-compatible server: answers "upstream {model}: {last user message}", streamed word by word when asked.</summary>
    private static async Task<WebApplication> StartStubAsync(ConcurrentQueue<JsonNode> received)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        app.MapPost("/v1/chat/completions", async (HttpContext context) =>
        {
            var request = (await JsonNode.ParseAsync(context.Request.Body))!;
            received.Enqueue(request);
            var model = request["model"]!.GetValue<string>();
            var text = $"upstream {model}: {request["messages"]!.AsArray().Last()!["content"]!.GetValue<string>()}";
            var usage = new JsonObject { ["prompt_tokens"] = 5, ["completion_tokens"] = 3, ["total_tokens"] = 8 };
            if (request["stream"]?.GetValue<bool>() != true)
            {
                await context.Response.WriteAsJsonAsync(new JsonObject
                {
                    ["id"] = "chatcmpl-stub", ["object"] = "chat.completion", ["created"] = 1, ["model"] = model,
                    ["choices"] = new JsonArray(new JsonObject
                    {
                        ["index"] = 0, ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = text }, ["finish_reason"] = "stop",
                    }),
                    ["usage"] = usage,
                });
                return;
            }
            context.Response.ContentType = "text/event-stream";
            var words = text.Split(' ');
            for (var i = 0; i < words.Length; i++)
            {
                var chunk = new JsonObject
                {
                    ["id"] = "chatcmpl-stub", ["object"] = "chat.completion.chunk", ["created"] = 1, ["model"] = model,
                    ["choices"] = new JsonArray(new JsonObject
                    {
                        ["index"] = 0, ["delta"] = new JsonObject { ["content"] = i == 0 ? words[i] : " " + words[i] },
                        ["finish_reason"] = i == words.Length - 1 ? "stop" : null,
                    }),
                };
                await context.Response.WriteAsync($"data: {chunk.ToJsonString()}\n\n");
            }
            var usageChunk = new JsonObject { ["id"] = "chatcmpl-stub", ["object"] = "chat.completion.chunk", ["created"] = 1, ["model"] = model, ["choices"] = new JsonArray(), ["usage"] = usage };
            await context.Response.WriteAsync($"data: {usageChunk.ToJsonString()}\n\ndata: [DONE]\n\n");
        });
        await app.StartAsync();
        return app;
    }
}
