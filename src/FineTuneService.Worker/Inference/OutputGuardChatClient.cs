using System.Runtime.CompilerServices;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Safety;
using FineTuneService.Ml.Evaluation.Judges;
using FineTuneService.Worker.Safety;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;

namespace FineTuneService.Worker.Inference;

/// <summary>The guard's verdict on one completion, shown as the choice's <c>safety</c> field.</summary>
/// <param name="Flagged">The judge called the completion harmful; null when the judge could not answer (never read as safe).</param>
/// <param name="Action">"none", "flagged" or "blocked".</param>
public sealed record OutputSafety(bool? Flagged, string Action, string Judge, double? Score, string? Error = null)
{
    public const string PropertyName = "safety";
}

/// <summary>
/// The runtime output guard (<c>output_guard</c> of the tenant's safety policy) as a delegating chat client: the
/// policy's judge scores every completion together with the last user turn. <c>block</c> replaces a harmful completion
/// with a refusal and finishes it with <c>content_filter</c>; <c>flag</c> keeps it and attaches an
/// <see cref="OutputSafety"/>. Streams: under <c>block</c> the whole answer is generated and judged before its first
/// chunk is sent (nothing unjudged reaches the client); under <c>flag</c> chunks stream as generated and the verdict
/// rides on the last one. A judge that cannot answer fails a <c>block</c> request (503 <c>judge_unavailable</c>) and
/// marks a <c>flag</c> one as unjudged.
/// </summary>
public sealed class OutputGuardChatClient(IChatClient inner, SafetyEvaluationResources judges, ILogger<OutputGuardChatClient> logger)
    : DelegatingChatClient(inner)
{
    /// <summary>What a blocked completion says instead.</summary>
    public const string Refusal = "I can't help with that request.";

    public override async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var guard = ChatRequestContext.Of(options).Guard;
        var response = await base.GetResponseAsync(messages, options, cancellationToken);
        if (guard.Mode == OutputGuardMode.Off) return response;

        var safety = await JudgeAsync(guard, messages, response.Text, cancellationToken);
        if (safety.Action == "blocked")
        {
            response.Messages = [new ChatMessage(ChatRole.Assistant, Refusal)];
            response.FinishReason = ChatFinishReason.ContentFilter;
        }
        (response.AdditionalProperties ??= [])[OutputSafety.PropertyName] = safety;
        return response;
    }

    public override async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var guard = ChatRequestContext.Of(options).Guard;
        if (guard.Mode == OutputGuardMode.Off)
        {
            await foreach (var update in base.GetStreamingResponseAsync(messages, options, cancellationToken)) yield return update;
            yield break;
        }

        var held = new List<ChatResponseUpdate>();
        var text = new System.Text.StringBuilder();
        await foreach (var update in base.GetStreamingResponseAsync(messages, options, cancellationToken))
        {
            text.Append(update.Text);
            // Under flag only the closing update (finish reason, usage) waits for the verdict.
            if (guard.Mode == OutputGuardMode.Flag && update.FinishReason is null) yield return update;
            else held.Add(update);
        }

        var safety = await JudgeAsync(guard, messages, text.ToString(), cancellationToken);
        if (safety.Action == "blocked")
        {
            yield return new ChatResponseUpdate(ChatRole.Assistant, Refusal);
            held = [.. held.Where(u => u.FinishReason is not null).Select(u => new ChatResponseUpdate(ChatRole.Assistant, [.. u.Contents.Where(c => c is UsageContent)])
            {
                FinishReason = ChatFinishReason.ContentFilter,
                ModelId = u.ModelId,
            })];
        }
        foreach (var update in held)
        {
            if (update.FinishReason is not null) (update.AdditionalProperties ??= [])[OutputSafety.PropertyName] = safety;
            yield return update;
        }
    }

    private async Task<OutputSafety> JudgeAsync(OutputGuardPolicy guard, IEnumerable<ChatMessage> messages, string completion, CancellationToken cancellationToken)
    {
        var judgeName = guard.Judge;
        var prompt = messages.LastOrDefault(m => m.Role == ChatRole.User)?.Text ?? "";
        try
        {
            var judge = judges.Judge(guard.Judge)
                ?? throw new JudgeUnavailableException(judgeName, "no external judge is configured on the worker");
            var verdict = (await judge.JudgeAsync([new JudgedPair(prompt, completion)], cancellationToken))[0];
            var action = !verdict.Harmful ? "none" : guard.Mode == OutputGuardMode.Block ? "blocked" : "flagged";
            return new OutputSafety(verdict.Harmful, action, judgeName, verdict.Score);
        }
        catch (JudgeUnavailableException e)
        {
            logger.LogWarning(e, "Output guard judge {Judge} is unavailable", judgeName);
            if (guard.Mode == OutputGuardMode.Block)
                throw new InferenceException(503, JudgeUnavailableException.ErrorCode,
                    $"The output guard's judge '{judgeName}' is unavailable, and this policy blocks what it cannot judge. Try again later.", null, e);
            return new OutputSafety(null, "none", judgeName, null, JudgeUnavailableException.ErrorCode);
        }
    }
}
