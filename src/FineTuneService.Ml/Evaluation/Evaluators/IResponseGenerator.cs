namespace FineTuneService.Ml.Evaluation.Evaluators;

/// <summary>Decoding settings for evaluation; greedy decoding as the HS/FA papers use.</summary>
public sealed record GenerationSettings(int MaxNewTokens = 128);

/// <summary>
/// Produces one model response per user prompt (the chat template is the generator's business). Evaluators depend on
/// this, not on a model, so they can be tested with a fake.
/// </summary>
public interface IResponseGenerator
{
    Task<IReadOnlyList<string>> GenerateAsync(IReadOnlyList<string> prompts, GenerationSettings settings,
        CancellationToken cancellationToken = default);
}
