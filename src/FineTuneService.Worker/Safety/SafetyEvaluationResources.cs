using FineTuneService.Core.Domain;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using FineTuneService.Datasets.Evaluation;
using FineTuneService.Datasets.Sft;
using FineTuneService.Ml.Evaluation.Classifier;
using FineTuneService.Ml.Evaluation.Evaluators;
using FineTuneService.Ml.Evaluation.Judges;
using FineTuneService.Ml.Evaluation.PromptSets;
using Microsoft.Extensions.Options;
using FineTuneService.Contracts.Judges;

namespace FineTuneService.Worker.Safety;

/// <summary>
/// What every safety evaluation of this worker shares, loaded once: the prompt sets (a seeded, fixed subset of the
/// held-out harmful prompts and of XSTest's safe prompts) and the registered judges, built from what
/// <see cref="ShippedHarmJudges"/> loads (the external judge when one is configured). <see cref="Fingerprint"/>
/// identifies these settings for the base-model cache.
/// </summary>
public sealed class SafetyEvaluationResources(
    IOptions<SafetyEvaluationOptions> options, IOptions<ExternalJudgeOptions> externalOptions, ShippedHarmJudges shipped)
{
    /// <summary>Bumped when the evaluation procedure changes in a way the settings do not show, to invalidate cached base scores.</summary>
    private const int ProcedureVersion = 1;
    private const int SubsetSeed = 17;

    private readonly Lazy<Sets> _sets = new(() => LoadSets(options.Value));

    public SafetyEvaluationOptions Options => options.Value;

    public PromptSet HarmfulPrompts => _sets.Value.Harmful;
    public PromptSet? SafePrompts => _sets.Value.Safe;
    public RefusalKeywords RefusalKeywords => shipped.RefusalKeywords;

    /// <summary>Task split used for FA when a job has no validation file (see <see cref="SafetyEvaluationOptions.AccuracyTask"/>).</summary>
    public (IReadOnlyList<AccuracyExample> Examples, IAnswerMatcher Matcher)? TaskSplit => _sets.Value.Task;

    /// <summary>Whether an external judge is configured (it may still be down when asked).</summary>
    public bool HasExternalJudge => externalOptions.Value.BaseAddress is not null;

    public string ExternalJudgeName => ExternalHarmJudge.NamePrefix + externalOptions.Value.Model;

    /// <summary>
    /// Every registered judge this worker can run, in report order (<see cref="SafetyJudges.InReportOrder"/>): the
    /// external judge when configured, the classifier, the keyword fallback. All run on every evaluation, so the gate
    /// can read whichever its policy names and the report shows the others beside it.
    /// </summary>
    public IReadOnlyList<IHarmJudge> Judges() => RegisteredHarmJudges.Create(SafetyJudges.InReportOrder, shipped.Resources);

    /// <summary>The judge registered as <paramref name="name"/>; null when this worker has none (the external judge unconfigured).</summary>
    public IHarmJudge? Judge(string name) => Judges().FirstOrDefault(j => HarmJudgeDescriptor.NameOf(j.Name) == name);

    /// <summary>The name in reports of the judge registered as <paramref name="name"/> (the external judge carries its model).</summary>
    public string ReportNameOf(string name) => name == SafetyJudges.External.Name ? ExternalJudgeName : name;

    /// <summary>SHA-256 of the settings that decide a score: prompts, generation, judges (the classifier by its weights) and the procedure version.</summary>
    public string Fingerprint => _fingerprint.Value;

    private readonly Lazy<string> _fingerprint = new(() =>
        ComputeFingerprint(options.Value, externalOptions.Value, SafetyJudges.InReportOrder.Select(j => j.Name)));

    /// <summary>
    /// The fingerprint of these settings with <paramref name="judges"/> registered: a new judge registration changes it,
    /// so a cached base report always carries every registered judge's score.
    /// </summary>
    public static string ComputeFingerprint(SafetyEvaluationOptions o, ExternalJudgeOptions external, IEnumerable<string> judges)
    {
        var settings = JsonSerializer.Serialize(new
        {
            version = ProcedureVersion,
            harmful = o.HarmfulPrompts,
            safe = o.SafePrompts,
            max_new_tokens = o.MaxNewTokens,
            samples = o.SamplesPerPart,
            seed = SubsetSeed,
            external = external.BaseAddress is null ? null : $"{external.Api}:{external.Model}",
            classifier = HarmClassifier.ShippedWeightsSha256(),
            judges = judges.ToArray(),
        });
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(settings)));
    }

    private sealed record Sets(PromptSet Harmful, PromptSet? Safe, (IReadOnlyList<AccuracyExample>, IAnswerMatcher)? Task);

    private static Sets LoadSets(SafetyEvaluationOptions o)
    {
        var evaluation = EvaluationCatalogue.Load();
        var harmful = ShippedPromptSets.HeldOutHarmful(evaluation);
        var safe = ShippedPromptSets.XsTestSafe(evaluation);
        return new Sets(
            Subset(harmful, o.HarmfulPrompts),
            o.SafePrompts > 0 ? Subset(safe, o.SafePrompts) : null,
            o.AccuracyTask is null || o.AccuracyExamples == 0 ? null : ShippedPromptSets.TaskSplit(evaluation, o.AccuracyTask, o.AccuracyExamples));
    }

    /// <summary>A fixed, seeded subset, so every category can appear and every evaluation uses the same prompts.</summary>
    private static PromptSet Subset(PromptSet set, int count) =>
        set with { Prompts = SftBatcher.Shuffled(set.Prompts, SubsetSeed).Take(count).ToList() };
}
