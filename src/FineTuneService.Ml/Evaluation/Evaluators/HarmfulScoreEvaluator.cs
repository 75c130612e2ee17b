using FineTuneService.Ml.Evaluation.Judges;
using FineTuneService.Ml.Evaluation.PromptSets;

namespace FineTuneService.Ml.Evaluation.Evaluators;

/// <summary>Harmful score of a model on one prompt set under every configured judge.</summary>
public sealed record HarmfulScoreResult(
    string PromptSet,
    IReadOnlyList<JudgeScore> Judges,
    IReadOnlyList<EvaluationSample> Samples,
    IReadOnlyList<EvaluationError> Errors);

/// <summary>
/// HS: greedy responses to harmful prompts, judged by each judge; the score is the % judged harmful. A judge that
/// fails gets a null score and a <c>judge_unavailable</c> error — its pairs are never counted as safe.
/// </summary>
public sealed class HarmfulScoreEvaluator(IResponseGenerator generator, IReadOnlyList<IHarmJudge> judges)
{
    public const string SampleKind = "harmful";

    public async Task<HarmfulScoreResult> EvaluateAsync(PromptSet prompts, GenerationSettings settings,
        int samplesToKeep = 20, CancellationToken cancellationToken = default)
    {
        if (judges.Count == 0) throw new InvalidOperationException("At least one harm judge is required.");
        var responses = await generator.GenerateAsync(prompts.Prompts.Select(p => p.Prompt).ToList(), settings, cancellationToken);
        if (responses.Count != prompts.Prompts.Count)
            throw new InvalidOperationException($"The generator returned {responses.Count} responses for {prompts.Prompts.Count} prompts.");
        var pairs = prompts.Prompts.Select((p, i) => new JudgedPair(p.Prompt, responses[i])).ToList();
        var categories = prompts.Prompts.Select(p => p.Category).ToList();

        var scores = new List<JudgeScore>();
        var errors = new List<EvaluationError>();
        var verdictsByJudge = new Dictionary<string, JudgeVerdict[]>();
        foreach (var judge in judges)
        {
            try
            {
                var verdicts = await judge.JudgeAsync(pairs, cancellationToken);
                if (verdicts.Length != pairs.Count)
                    throw new JudgeUnavailableException(judge.Name, $"returned {verdicts.Length} verdicts for {pairs.Count} pairs");
                verdictsByJudge[judge.Name] = verdicts;
                var harmful = verdicts.Select(v => v.Harmful).ToList();
                var count = harmful.Count(h => h);
                scores.Add(new JudgeScore(judge.Name, Rates.Percent(count, pairs.Count), pairs.Count, count,
                    Rates.ByCategory(categories, harmful), Error: null));
            }
            catch (JudgeUnavailableException e)
            {
                scores.Add(new JudgeScore(judge.Name, HarmfulScore: null, Judged: 0, Harmful: 0, PerCategory: null, JudgeUnavailableException.ErrorCode));
                errors.Add(new EvaluationError(JudgeUnavailableException.ErrorCode, e.Message, judge.Name));
            }
        }

        return new HarmfulScoreResult(prompts.Name, scores, KeepSamples(pairs, categories, verdictsByJudge, samplesToKeep), errors);
    }

    /// <summary>Keeps responses the primary judge found harmful first, then the rest, each in prompt order.</summary>
    private IReadOnlyList<EvaluationSample> KeepSamples(List<JudgedPair> pairs, List<string?> categories,
        Dictionary<string, JudgeVerdict[]> verdictsByJudge, int count)
    {
        verdictsByJudge.TryGetValue(judges[0].Name, out var primary);
        return Enumerable.Range(0, pairs.Count)
            .OrderBy(i => primary is not null && primary[i].Harmful ? 0 : 1)
            .ThenBy(i => i)
            .Take(count)
            .Select(i => new EvaluationSample(SampleKind, pairs[i].Prompt, pairs[i].Response, categories[i],
                judges.ToDictionary(j => j.Name, j => verdictsByJudge.TryGetValue(j.Name, out var v) ? v[i].Harmful : (bool?)null)))
            .ToList();
    }
}
