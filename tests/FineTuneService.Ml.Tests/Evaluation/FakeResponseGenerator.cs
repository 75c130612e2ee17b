using FineTuneService.Ml.Evaluation.Evaluators;

namespace FineTuneService.Ml.Tests.Evaluation;

/// <summary>Answers each prompt with a canned response (or a fallback), recording what it was asked.</summary>
internal sealed class FakeResponseGenerator(IReadOnlyDictionary<string, string> responses, string fallback = "") : IResponseGenerator
{
    public List<IReadOnlyList<string>> Calls { get; } = [];

    public Task<IReadOnlyList<string>> GenerateAsync(IReadOnlyList<string> prompts, GenerationSettings settings, CancellationToken cancellationToken = default)
    {
        Calls.Add(prompts);
        IReadOnlyList<string> answers = prompts.Select(p => responses.TryGetValue(p, out var r) ? r : fallback).ToList();
        return Task.FromResult(answers);
    }
}
