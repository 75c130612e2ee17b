using System.ClientModel;
using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;
using OpenAI;

namespace FineTuneService.Worker.Inference;

/// <summary>
/// <c>Inference:Upstream</c>: chats go to an OpenAI-compatible server that serves the exported models under their
/// service ids (vLLM with <c>--served-model-name</c> or <c>--lora-modules</c>, TGI, the llama.cpp server) through
/// the official OpenAI SDK's <see cref="IChatClient"/>. The API has already decided the tenant may use the model;
/// the guard runs over the answer as over the local engine's. Upstream client errors keep their 4xx status;
/// anything else is a 502.
/// </summary>
public sealed class UpstreamChatClient(UpstreamOptions options) : IChatClient
{
    private readonly ConcurrentDictionary<string, IChatClient> _clients = new();

    private IChatClient For(ChatOptions? options1) => _clients.GetOrAdd(options1?.ModelId ?? ChatRequestContext.Of(options1).Model.Id, model =>
        new OpenAI.Chat.ChatClient(model, new ApiKeyCredential(options.ApiKey),
            new OpenAIClientOptions { Endpoint = options.BaseAddress, NetworkTimeout = options.Timeout }).AsIChatClient());

    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        try
        {
            return await For(options).GetResponseAsync(messages, options, cancellationToken);
        }
        catch (ClientResultException e)
        {
            throw Translate(e);
        }
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await using var updates = For(options).GetStreamingResponseAsync(messages, options, cancellationToken).GetAsyncEnumerator(cancellationToken);
        while (true)
        {
            try
            {
                if (!await updates.MoveNextAsync()) yield break;
            }
            catch (ClientResultException e)
            {
                throw Translate(e);
            }
            yield return updates.Current;
        }
    }

    private static InferenceException Translate(ClientResultException e) => e.Status is >= 400 and < 500
        ? new InferenceException(e.Status, "upstream_rejected", $"The upstream inference server rejected the request: {e.Message}", inner: e)
        : new InferenceException(502, "upstream_unavailable", $"The upstream inference server failed: {e.Message}", inner: e);

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is null && serviceType.IsInstanceOfType(this) ? this : null;

    public void Dispose()
    {
        foreach (var client in _clients.Values) client.Dispose();
    }
}
