using FineTuneService.Core.Domain;
using FineTuneService.Core.Inference;
using FineTuneService.Core.Models;
using Microsoft.Extensions.AI;
using FineTuneService.Contracts.Judges;

namespace FineTuneService.Worker.Inference;

/// <summary>What the chat clients need beyond <see cref="ChatOptions"/>: the resolved model and the tenant's output guard.</summary>
public sealed record ChatRequestContext(UsableModel Model, OutputGuardPolicy Guard, string MaxTokensParam = "max_tokens")
{
    private const string Key = "fts.request";

    public void AttachTo(ChatOptions options) => (options.AdditionalProperties ??= [])[Key] = this;

    public static ChatRequestContext Of(ChatOptions? options) =>
        options?.AdditionalProperties?.TryGetValue(Key, out var value) == true && value is ChatRequestContext context
            ? context
            : throw new InvalidOperationException("The chat options carry no request context (the inference server attaches one).");
}

/// <summary>The tenant's output guard: its mode and the judge that scores completions.</summary>
public sealed record OutputGuardPolicy(OutputGuardMode Mode, string Judge)
{
    public static readonly OutputGuardPolicy Off = new(OutputGuardMode.Off, SafetyJudges.Classifier.Name);
}
