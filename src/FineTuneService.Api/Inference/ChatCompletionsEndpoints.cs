using System.Security.Claims;
using FineTuneService.Api.Auth;
using FineTuneService.Api.Errors;
using FineTuneService.Core.Inference;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace FineTuneService.Api.Inference;

/// <summary>OpenAI Chat Completions: <c>/v1/chat/completions</c>, answered by a worker's inference server.</summary>
public static class ChatCompletionsEndpoints
{
    /// <summary>Largest request body read (the messages of a long context fit many times over).</summary>
    public const int MaxBodyBytes = 4 * 1024 * 1024;

    public static IEndpointRouteBuilder MapChatCompletions(this IEndpointRouteBuilder routes)
    {
        var chat = routes.MapGroup("/v1/chat").RequireAuthorization(FtsClaims.TenantPolicy).WithTags("Chat");
        chat.MapPost("/completions", CreateChatCompletion)
            .Accepts<ChatCompletionBody>("application/json")
            .Produces(StatusCodes.Status200OK, contentType: "application/json")
            .Produces(StatusCodes.Status200OK, contentType: "text/event-stream")
            .Produces<OpenAiError>(StatusCodes.Status400BadRequest)
            .Produces<OpenAiError>(StatusCodes.Status404NotFound)
            .Produces<OpenAiError>(StatusCodes.Status503ServiceUnavailable);
        return routes;
    }

    /// <summary>
    /// Create a chat completion with a base model, one of the caller's fine-tuned models or one of their checkpoints
    /// (<c>…:ckpt-step-N</c>): OpenAI's request (<c>messages</c>, <c>max_tokens</c>/<c>max_completion_tokens</c>,
    /// <c>temperature</c> (0 = greedy), <c>top_p</c>, <c>seed</c>, <c>stop</c>, <c>n</c>, <c>stream</c>,
    /// <c>stream_options.include_usage</c>) and response. A model held for review, rejected, deleted or another
    /// tenant's is a 404 like one that never existed. With the policy's <c>output_guard</c> on, choices carry a
    /// <c>safety</c> verdict, and under <c>block</c> a harmful answer is replaced by a refusal with
    /// <c>finish_reason: "content_filter"</c>.
    /// </summary>
    internal static async Task<EmptyHttpResult> CreateChatCompletion(HttpContext http, ClaimsPrincipal user, ModelRoutes routes,
        InferenceForwarder forwarder, CancellationToken cancellationToken)
    {
        http.Request.EnableBuffering(bufferThreshold: 64 * 1024, bufferLimit: MaxBodyBytes);
        ChatCompletionRequest request;
        using (var body = new MemoryStream())
        {
            await http.Request.Body.CopyToAsync(body, cancellationToken);
            try
            {
                request = ChatCompletionRequest.Parse(body.GetBuffer().AsSpan(0, (int)body.Length));
            }
            catch (ChatRequestException e)
            {
                throw ApiException.InvalidRequest(e.Message, e.Param, "invalid_request");
            }
        }

        var tenantId = user.TenantId();
        var weightsKey = await routes.WeightsKeyAsync(tenantId, request.Model, cancellationToken)
            ?? throw ApiException.ModelNotFound(request.Model);
        await forwarder.ForwardAsync(http, tenantId, weightsKey, cancellationToken);
        return TypedResults.Empty;
    }

    /// <summary>The request body, for the API documentation (the endpoint reads it with <see cref="ChatCompletionRequest.Parse(System.Text.Json.JsonElement)"/>).</summary>
    public sealed record ChatCompletionBody(
        string Model, IReadOnlyList<ChatCompletionBody.Message> Messages, int? MaxTokens, int? MaxCompletionTokens, double? Temperature,
        double? TopP, long? Seed, object? Stop, int? N, bool? Stream, ChatCompletionBody.StreamSettings? StreamOptions)
    {
        /// <param name="Content">A string, or an array of <c>{"type": "text", "text": ...}</c> parts.</param>
        public sealed record Message(string Role, object Content);

        public sealed record StreamSettings(bool? IncludeUsage);
    }

    /// <summary>Chat completions: the endpoint directory and the YARP forwarder.</summary>
    public static IHostApplicationBuilder AddChatCompletions(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<InferenceRoutingOptions>().BindConfiguration(InferenceRoutingOptions.SectionName)
            .Validate(o => o.EndpointTimeout > TimeSpan.Zero && o.EndpointRefresh >= TimeSpan.Zero && o.ActivityTimeout > TimeSpan.Zero
                    && o.ModelRouteLifetime >= TimeSpan.Zero,
                "Inference:EndpointTimeout and Inference:ActivityTimeout must be positive, and Inference:ModelRouteLifetime not negative.")
            .ValidateOnStart();
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.AddHttpForwarder();
        builder.Services.AddSingleton<InferenceEndpointDirectory>();
        builder.Services.AddSingleton<ModelRoutes>();
        builder.Services.AddSingleton<InferenceForwarder>();
        return builder;
    }
}
