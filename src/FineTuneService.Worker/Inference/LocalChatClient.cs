using System.Runtime.CompilerServices;
using FineTuneService.Ml.Generation;
using FineTuneService.Ml.Inference;
using Microsoft.Extensions.AI;
using TrainingMessage = FineTuneService.Datasets.ChatMessage;

namespace FineTuneService.Worker.Inference;

/// <summary>
/// The built-in engine as an <see cref="IChatClient"/>: renders the chat with the model's own template, checks it
/// against the model's context, and streams the tokens the model's <see cref="ContinuousBatcher"/> decodes for it.
/// </summary>
public sealed class LocalChatClient(ServingModels models) : IChatClient
{
    public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        GetStreamingResponseAsync(messages, options, cancellationToken).ToChatResponseAsync(cancellationToken);

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var context = ChatRequestContext.Of(options);
        using var lease = await models.AcquireAsync(context.Model, cancellationToken);
        var model = lease.Model;
        var prompt = model.EncodePrompt(messages.Select(m => new TrainingMessage(m.Role.Value, m.Text)).ToList());
        var room = model.ContextLength - prompt.Length;
        if (room < 1)
            throw InferenceException.ContextLength(
                $"The prompt is {prompt.Length} tokens long; this model's context is {model.ContextLength} tokens. Shorten the messages.", "messages");
        var maxTokens = options?.MaxOutputTokens ?? room;
        if (maxTokens > room)
            throw InferenceException.ContextLength(
                $"{context.MaxTokensParam} is {maxTokens}, but the prompt ({prompt.Length} tokens) leaves room for only {room} of the model's {model.ContextLength}.",
                context.MaxTokensParam);

        var sequence = new SequenceOptions
        {
            MaxNewTokens = maxTokens,
            Temperature = options?.Temperature ?? 1.0,
            TopP = options?.TopP ?? 1.0,
            Seed = options?.Seed ?? Random.Shared.NextInt64(),
            StopTokenIds = model.StopTokenIds,
        };
        var text = new IncrementalText(model.Tokenizer, options?.StopSequences?.ToList() ?? []);
        var completionTokens = 0;
        var finish = ChatFinishReason.Length;
        await foreach (var token in model.Batcher.GenerateAsync(prompt, sequence, cancellationToken))
        {
            if (token.TokenId is { } id)
            {
                completionTokens++;
                if (text.Add(id) is { Length: > 0 } delta) yield return Update(delta);
                if (text.Stopped)
                {
                    finish = ChatFinishReason.Stop; // leaving the loop takes the sequence out of the batch
                    break;
                }
            }
            if (token.Finished is { } reason) finish = reason == FinishReason.Stop ? ChatFinishReason.Stop : ChatFinishReason.Length;
        }
        if (text.Flush() is { Length: > 0 } rest) yield return Update(rest);
        yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(new UsageDetails
        {
            InputTokenCount = prompt.Length,
            OutputTokenCount = completionTokens,
            TotalTokenCount = prompt.Length + completionTokens,
        })])
        {
            FinishReason = finish,
            ModelId = context.Model.Id,
        };

        ChatResponseUpdate Update(string delta) => new(ChatRole.Assistant, delta) { ModelId = context.Model.Id };
    }

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is null && serviceType.IsInstanceOfType(this) ? this : null;

    public void Dispose()
    {
    }
}
