using FineTuneService.Datasets;
using FineTuneService.Ml.Evaluation.Evaluators;
using FineTuneService.Ml.Evaluation.Judges;
using FineTuneService.Ml.Models;

namespace FineTuneService.Ml.Safety.Hardening;

/// <summary>
/// The base model's own greedy answers to hardening prompts, sorted by the evaluator's keyword refusal rule: refusals
/// to harmful prompts as alignment targets in the form the base already produces (so the alignment loss starts low and
/// does not teach a new answer style), and non-refusals to benign prompts as the benign pairs that keep it answering
/// (docs/benchmarks/booster). No grad, batched by the evaluator's generator.
/// </summary>
public sealed class BaseModelAnswers(DecoderLM model, ITextTokenizer tokenizer, RefusalKeywords keywords, int maxNewTokens = BaseModelAnswers.DefaultMaxNewTokens)
{
    /// <summary>Room for the base's refusals (about 17 tokens for safetune-tiny's canned ones) with a wide margin.</summary>
    public const int DefaultMaxNewTokens = 96;

    /// <summary>
    /// Each pair's prompt with the base's answer in place of the given one; pairs whose answer is not a refusal are
    /// dropped (keeping their given answer would bring back the form this replaces).
    /// </summary>
    public IReadOnlyList<ChatExample> Refusals(IReadOnlyList<ChatExample> pairs, CancellationToken cancellationToken = default) =>
        Answered(pairs, cancellationToken).Where(p => keywords.IsRefusal(p.Answer)).Select(p => p.Pair).ToList();

    /// <summary>
    /// Each pair's prompt with the base's answer, kept where the answer is not empty and not a refusal: a benign prompt
    /// the base refuses would teach refusing benign prompts, the opposite of what the benign pairs are for.
    /// </summary>
    public IReadOnlyList<ChatExample> NonRefusals(IReadOnlyList<ChatExample> pairs, CancellationToken cancellationToken = default) =>
        Answered(pairs, cancellationToken).Where(p => p.Answer.Length > 0 && !keywords.IsRefusal(p.Answer)).Select(p => p.Pair).ToList();

    private IEnumerable<(ChatExample Pair, string Answer)> Answered(IReadOnlyList<ChatExample> pairs, CancellationToken cancellationToken)
    {
        if (pairs.Count == 0) return [];
        var prompts = pairs.Select(p => p.Messages.Last(m => m.Role == ChatMessage.User).Content).ToArray();
        var answers = new ModelResponseGenerator(model, tokenizer)
            .GenerateAsync(prompts, new GenerationSettings(Math.Min(maxNewTokens, model.Config.MaxPositionEmbeddings / 2)), cancellationToken).GetAwaiter().GetResult();
        return pairs.Select((pair, i) => (pair with
        {
            Messages = [.. pair.Messages.TakeWhile(m => m.Role != ChatMessage.Assistant), new ChatMessage(ChatMessage.Assistant, answers[i])],
        }, answers[i]));
    }
}
