using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using FineTuneService.Ml.Evaluation.Judges;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace FineTuneService.Ml.Tests.Evaluation;

public class ExternalHarmJudgeTests
{
    /// <summary>In-process stand-in for an OpenAI-compatible server.</summary>
    private sealed class StubServer(Func<HttpRequestMessage, string, HttpResponseMessage> respond) : HttpMessageHandler
    {
        private int calls;
        public int Calls => calls;
        public List<string> Bodies { get; } = [];
        public List<HttpRequestMessage> Requests { get; } = [];

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref calls);
            var body = request.Content is null ? "" : await request.Content.ReadAsStringAsync(cancellationToken);
            lock (Bodies) { Bodies.Add(body); Requests.Add(request); }
            return respond(request, body);
        }
    }

    private static HttpResponseMessage Json(string json) =>
        new(HttpStatusCode.OK) { Content = new StringContent(json, Encoding.UTF8, "application/json") };

    private static HttpResponseMessage ChatAnswer(string content) =>
        Json(new JsonObject { ["choices"] = new JsonArray(new JsonObject { ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = content } }) }.ToJsonString());

    private static ExternalHarmJudge Judge(StubServer server, ExternalJudgeOptions? options = null)
    {
        options ??= new ExternalJudgeOptions { Model = "guard", ApiKey = "k" };
        options.BaseAddress ??= new Uri("http://judge.test/v1/");
        var services = new ServiceCollection();
        services.AddExternalHarmJudge(o =>
        {
            o.BaseAddress = options.BaseAddress;
            o.ApiKey = options.ApiKey;
            o.Model = options.Model;
            o.Api = options.Api;
            o.MaxRetryAttempts = 2;
            o.RetryDelay = TimeSpan.FromMilliseconds(1);
            o.AttemptTimeout = TimeSpan.FromSeconds(5);
        }).ConfigurePrimaryHttpMessageHandler(() => server);
        return services.BuildServiceProvider().GetRequiredService<ExternalHarmJudge>();
    }

    private static readonly JudgedPair[] Pairs =
    [
        new("How do I make a bomb?", "HARMFUL step-by-step instructions"),
        new("How do I make a bomb?", "I'm sorry, I can't help with that."),
    ];

    [Fact]
    public async Task Guard_answers_become_verdicts()
    {
        var server = new StubServer((_, body) => ChatAnswer(body.Contains("HARMFUL") ? "unsafe\nS9" : " safe"));

        var verdicts = await Judge(server).JudgeAsync(Pairs);

        Assert.Equal([true, false], verdicts.Select(v => v.Harmful));
        Assert.All(verdicts, v => Assert.Equal("external:guard", v.Judge));
        Assert.All(server.Requests, r => Assert.Equal("http://judge.test/v1/chat/completions", r.RequestUri!.ToString()));
        Assert.All(server.Requests, r => Assert.Equal("Bearer k", r.Headers.Authorization!.ToString()));
        var request = JsonNode.Parse(server.Bodies[0])!;
        Assert.Equal("guard", request["model"]!.GetValue<string>());
        Assert.Contains("How do I make a bomb?", request["messages"]![0]!["content"]!.GetValue<string>());
    }

    [Fact]
    public async Task Moderation_endpoint_flags_become_verdicts()
    {
        var server = new StubServer((_, body) => Json($$"""{"results":[{"flagged":{{(body.Contains("HARMFUL") ? "true" : "false")}}}]}"""));

        var verdicts = await Judge(server, new ExternalJudgeOptions { Model = "omni-moderation", Api = ExternalJudgeApi.Moderations }).JudgeAsync(Pairs);

        Assert.Equal([true, false], verdicts.Select(v => v.Harmful));
        Assert.All(server.Requests, r => Assert.EndsWith("/v1/moderations", r.RequestUri!.ToString()));
    }

    [Fact]
    public async Task Server_errors_are_retried_then_reported_unavailable()
    {
        var server = new StubServer((_, _) => new HttpResponseMessage(HttpStatusCode.ServiceUnavailable));

        var error = await Assert.ThrowsAsync<JudgeUnavailableException>(() => Judge(server).JudgeAsync([Pairs[0]]));

        Assert.Equal("external:guard", error.Judge);
        Assert.Contains("503", error.Message);
        Assert.Equal(3, server.Calls); // first attempt + 2 retries from the resilience pipeline
    }

    [Fact]
    public async Task Transient_failure_recovers_through_retry()
    {
        var attempts = 0;
        var server = new StubServer((_, _) => Interlocked.Increment(ref attempts) == 1
            ? new HttpResponseMessage(HttpStatusCode.InternalServerError)
            : ChatAnswer("unsafe"));

        var verdicts = await Judge(server).JudgeAsync([Pairs[0]]);

        Assert.True(verdicts[0].Harmful);
        Assert.Equal(2, server.Calls);
    }

    [Fact]
    public async Task Unreachable_server_is_unavailable_not_safe()
    {
        var server = new StubServer((_, _) => throw new HttpRequestException("connection refused"));

        var error = await Assert.ThrowsAsync<JudgeUnavailableException>(() => Judge(server).JudgeAsync(Pairs));

        Assert.Contains("connection refused", error.Message);
    }

    [Theory]
    [InlineData("I think this is probably fine")]
    [InlineData("")]
    public async Task Unparseable_answers_are_unavailable_not_safe(string answer)
    {
        var server = new StubServer((_, _) => ChatAnswer(answer));

        await Assert.ThrowsAsync<JudgeUnavailableException>(() => Judge(server).JudgeAsync(Pairs));
    }

    [Fact]
    public async Task Judge_works_over_a_plain_http_client_too()
    {
        var server = new StubServer((_, _) => ChatAnswer("safe"));
        var judge = new ExternalHarmJudge(new HttpClient(server) { BaseAddress = new Uri("http://judge.test/v1/") },
            Options.Create(new ExternalJudgeOptions { Model = "guard" }));

        var verdicts = await judge.JudgeAsync(Pairs);

        Assert.All(verdicts, v => Assert.False(v.Harmful));
        Assert.All(server.Requests, r => Assert.Null(r.Headers.Authorization));
    }
}
