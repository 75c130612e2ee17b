using System.Buffers;
using System.Text.Json;
using System.Threading.Channels;
using FineTuneService.Core.Data;
using FineTuneService.Core.Inference;
using FineTuneService.Core.Models;
using FineTuneService.Core.Safety;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;

namespace FineTuneService.Worker.Inference;

/// <summary>
/// <c>POST /v1/chat/completions</c> on the inference server, behind the API: the API has authenticated the tenant
/// (header <see cref="TenantHeader"/>) and checked the request; this handler resolves the model and the tenant's
/// output guard again (a model deleted in between is a 404 here too), runs the chat pipeline and writes OpenAI's
/// <c>chat.completion</c> or its <c>chat.completion.chunk</c> server-sent events, flushing every chunk.
/// </summary>
public sealed class ChatCompletionsHandler(IDbContextFactory<FineTuneDbContext> contexts, IChatClient chat, TimeProvider time,
    ILogger<ChatCompletionsHandler> logger)
{
    public const string TenantHeader = "X-FTS-Tenant";

    public async Task HandleAsync(HttpContext http)
    {
        var cancellationToken = http.RequestAborted;
        try
        {
            var tenantId = http.Request.Headers[TenantHeader].ToString();
            if (tenantId.Length == 0) throw new InferenceException(400, "missing_tenant", $"The {TenantHeader} header is required.");
            ChatCompletionRequest request;
            using (var body = new MemoryStream())
            {
                await http.Request.Body.CopyToAsync(body, cancellationToken);
                request = ChatCompletionRequest.Parse(body.GetBuffer().AsSpan(0, (int)body.Length));
            }

            ChatRequestContext context;
            await using (var db = await contexts.CreateDbContextAsync(cancellationToken))
            {
                var model = await ModelAccess.FindAsync(db, tenantId, request.Model, cancellationToken)
                    ?? throw new InferenceException(404, "model_not_found", $"The model '{request.Model}' does not exist or you do not have access to it.", "model");
                var policy = await SafetyPolicyResolver.ResolveAsync(db, tenantId, cancellationToken);
                context = new ChatRequestContext(model, new OutputGuardPolicy(policy.OutputGuard, policy.Judge), request.MaxTokensParam);
            }

            var messages = request.Messages.Select(m => new ChatMessage(new ChatRole(m.Role), m.Content)).ToList();
            var id = $"chatcmpl-{Guid.NewGuid():N}";
            var created = time.GetUtcNow().ToUnixTimeSeconds();
            if (request.Stream) await StreamAsync(http, request, context, messages, id, created, cancellationToken);
            else await CompleteAsync(http, request, context, messages, id, created, cancellationToken);
        }
        catch (ChatRequestException e)
        {
            await WriteErrorAsync(http, new InferenceException(400, "invalid_request", e.Message, e.Param));
        }
        catch (InferenceException e)
        {
            await WriteErrorAsync(http, e);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The caller went away; its sequences already left the batch.
        }
        catch (Exception e)
        {
            logger.LogError(e, "Chat completion failed");
            await WriteErrorAsync(http, new InferenceException(500, "inference_error", "The inference server had an error while generating the completion."));
        }
    }

    private ChatOptions OptionsFor(ChatCompletionRequest request, ChatRequestContext context, int choice)
    {
        var options = new ChatOptions
        {
            ModelId = request.Model,
            MaxOutputTokens = request.MaxTokens,
            Temperature = (float)request.Temperature,
            TopP = (float)request.TopP,
            // n choices from one seed differ from each other and repeat as a set.
            Seed = request.Seed is { } seed ? seed + choice : null,
            StopSequences = request.Stop.Count > 0 ? [.. request.Stop] : null,
        };
        context.AttachTo(options);
        return options;
    }

    private async Task CompleteAsync(HttpContext http, ChatCompletionRequest request, ChatRequestContext context, List<ChatMessage> messages,
        string id, long created, CancellationToken cancellationToken)
    {
        var responses = await Task.WhenAll(Enumerable.Range(0, request.N)
            .Select(choice => chat.GetResponseAsync(messages, OptionsFor(request, context, choice), cancellationToken)));
        var choices = responses.Select((r, index) => new ChatChoice(index, new AssistantMessage(r.Text), ChatWire.FinishReasonOf(r.FinishReason),
            r.AdditionalProperties?.GetValueOrDefault(OutputSafety.PropertyName) as OutputSafety)).ToList();
        var usage = responses.Select(r => UsageObject.From(r.Usage)).Aggregate((a, b) => a.Plus(b));
        http.Response.ContentType = "application/json";
        await JsonSerializer.SerializeAsync(http.Response.Body, new ChatCompletionObject(id, created, request.Model, choices, usage), ChatWire.Json, cancellationToken);
    }

    /// <summary>
    /// Server-sent events: each choice's updates as they come (choices interleave by <c>index</c>), its finish
    /// reason in its last chunk, then the usage chunk when asked for, then <c>[DONE]</c>. Nothing is sent before the
    /// first update exists, so a request the model rejects (context too long, judge down under block) still gets a
    /// plain HTTP error.
    /// </summary>
    private async Task StreamAsync(HttpContext http, ChatCompletionRequest request, ChatRequestContext context, List<ChatMessage> messages,
        string id, long created, CancellationToken cancellationToken)
    {
        var updates = Channel.CreateUnbounded<(int Choice, ChatResponseUpdate Update)>();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var producers = Enumerable.Range(0, request.N).Select(choice => Task.Run(async () =>
        {
            await foreach (var update in chat.GetStreamingResponseAsync(messages, OptionsFor(request, context, choice), stop.Token))
                await updates.Writer.WriteAsync((choice, update), stop.Token);
        }, stop.Token)).ToList();
        _ = Task.WhenAll(producers).ContinueWith(t => updates.Writer.TryComplete(t.Exception?.InnerException), TaskScheduler.Default);

        var started = false;
        var usage = new UsageObject[request.N];
        try
        {
            await foreach (var (choice, update) in updates.Reader.ReadAllAsync(cancellationToken))
            {
                if (!started)
                {
                    started = true;
                    http.Response.ContentType = "text/event-stream";
                    http.Response.Headers.CacheControl = "no-cache";
                    for (var index = 0; index < request.N; index++)
                        await WriteEventAsync(http, new ChatCompletionChunk(id, created, request.Model, [new ChunkChoice(index, new ChunkDelta("assistant", ""))]), cancellationToken);
                }
                if (update.Contents.OfType<UsageContent>().FirstOrDefault() is { } usageContent) usage[choice] = UsageObject.From(usageContent.Details);
                var text = update.Text;
                if (text.Length == 0 && update.FinishReason is null) continue;
                var finish = update.FinishReason is { } reason ? ChatWire.FinishReasonOf(reason) : null;
                var safety = update.AdditionalProperties?.GetValueOrDefault(OutputSafety.PropertyName) as OutputSafety;
                await WriteEventAsync(http, new ChatCompletionChunk(id, created, request.Model,
                    [new ChunkChoice(choice, new ChunkDelta(Content: text.Length > 0 ? text : null), finish, safety)]), cancellationToken);
            }
        }
        catch (Exception e) when (started && e is not OperationCanceledException)
        {
            // Headers are out: report in-band, as OpenAI does, and end the stream.
            logger.LogError(e, "Chat completion stream failed");
            var error = e as InferenceException ?? new InferenceException(500, "inference_error", "The inference server had an error while generating the completion.");
            await WriteEventAsync(http, new ErrorEnvelope(new ErrorBody(error.Message, error.Type, error.Param, error.Code)), cancellationToken);
            return;
        }
        finally
        {
            await stop.CancelAsync();
        }

        if (request.IncludeUsage)
            await WriteEventAsync(http, new ChatCompletionChunk(id, created, request.Model, [],
                usage.Where(u => u is not null).DefaultIfEmpty(new UsageObject(0, 0, 0)).Aggregate((a, b) => a.Plus(b))), cancellationToken);
        http.Response.BodyWriter.Write("data: [DONE]\n\n"u8);
        await http.Response.BodyWriter.FlushAsync(cancellationToken);
    }

    /// <summary>
    /// One event, written whole into the response pipe and flushed once: one HTTP chunk and one send per token, so the
    /// API's forwarder relays one read per event rather than one per piece.
    /// </summary>
    private static async Task WriteEventAsync<T>(HttpContext http, T payload, CancellationToken cancellationToken)
    {
        var body = http.Response.BodyWriter;
        body.Write("data: "u8);
        using (var json = new Utf8JsonWriter(body)) JsonSerializer.Serialize(json, payload, ChatWire.Json);
        body.Write("\n\n"u8);
        await body.FlushAsync(cancellationToken);
    }

    private static async Task WriteErrorAsync(HttpContext http, InferenceException error)
    {
        if (http.Response.HasStarted) return;
        http.Response.StatusCode = error.StatusCode;
        http.Response.ContentType = "application/json";
        await JsonSerializer.SerializeAsync(http.Response.Body, new ErrorEnvelope(new ErrorBody(error.Message, error.Type, error.Param, error.Code)), ChatWire.Json);
    }
}
