using FineTuneService.Datasets;
using FineTuneService.Ml.Evaluation.Evaluators;
using FineTuneService.Ml.Evaluation.Judges;
using FineTuneService.Ml.Models;

namespace FineTuneService.Ml.Safety.Hardening;

/// <summary>
/// The base model's own answers to alignment prompts, kept where the evaluator's keyword rule counts them as refusals:
/// alignment targets in the form the base already produces, so the alignment loss starts low and does not teach a new
/// answer style (docs/benchmarks/booster). Greedy, no grad, batched by the evaluator's generator.
/// </summary>
public sealed class BaseModelRefusals(DecoderLM model, ITextTokenizer tokenizer, RefusalKeywords keywords, int maxNewTokens = BaseModelRefusals.DefaultMaxNewTokens)
{
    /// <summary>Room for the base's refusals (about 17 tokens for safetune-tiny's canned ones) with a wide margin.</summary>
    public const int DefaultMaxNewTokens = 96;

    /// <summary>
    /// Each pair's prompt with the base's greedy answer in place of the given one; pairs whose answer is not a refusal
    /// are dropped (keeping their given answer would bring back the form this replaces).
    /// </summary>
    public IReadOnlyList<ChatExample> Answer(IReadOnlyList<ChatExample> pairs, CancellationToken cancellationToken = default)
    {
        var prompts = pairs.Select(p => p.Messages.Last(m => m.Role == ChatMessage.User).Content).ToArray();
        var answers = new ModelResponseGenerator(model, tokenizer)
            .GenerateAsync(prompts, new GenerationSettings(Math.Min(maxNewTokens, model.Config.MaxPositionEmbeddings / 2)), cancellationToken).GetAwaiter().GetResult();
        return pairs.Select((pair, i) => (pair, answer: answers[i]))
            .Where(p => keywords.IsRefusal(p.answer))
            .Select(p => p.pair with { Messages = [.. p.pair.Messages.TakeWhile(m => m.Role != ChatMessage.Assistant), new ChatMessage(ChatMessage.Assistant, p.answer)] })
            .ToList();
    }
}
