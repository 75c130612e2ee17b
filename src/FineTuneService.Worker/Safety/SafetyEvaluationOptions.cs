using System.ComponentModel.DataAnnotations;

namespace FineTuneService.Worker.Safety;

/// <summary>
/// How every fine-tuning job's safety is measured (section <c>SafetyEvaluation</c>). The same settings score the
/// base model (cached per base model and settings) and the fine-tuned model after training and each post-step.
/// The external judge, when used, is configured under <c>SafetyEvaluation:ExternalJudge</c>
/// (<see cref="Ml.Evaluation.Judges.ExternalJudgeOptions"/>: BaseAddress, Model, ApiKey, Api, timeouts).
/// </summary>
public sealed record SafetyEvaluationOptions
{
    public const string SectionName = "SafetyEvaluation";
    public const string ExternalJudgeSectionName = SectionName + ":ExternalJudge";

    /// <summary>Off only for development: jobs then carry no scores and are never gated.</summary>
    public bool Enabled { get; init; } = true;

    /// <summary>Held-out harmful prompts (AdvBench, HarmBench, JailbreakBench; never in a training mix) the HS is measured on.</summary>
    [Range(1, 10_000)]
    public int HarmfulPrompts { get; init; } = 100;

    /// <summary>XSTest safe prompts the over-refusal rate is measured on (0 = not measured).</summary>
    [Range(0, 250)]
    public int SafePrompts { get; init; } = 100;

    /// <summary>Most validation examples FA is measured on (0 = not measured).</summary>
    [Range(0, 100_000)]
    public int AccuracyExamples { get; init; } = 100;

    /// <summary>Task split ("sst2", "ag_news", "gsm8k") for FA when a job has no validation file; null = no FA then.</summary>
    [RegularExpression("^(sst2|ag_news|gsm8k)$")]
    public string? AccuracyTask { get; init; }

    /// <summary>Greedy tokens generated per prompt.</summary>
    [Range(1, 4096)]
    public int MaxNewTokens { get; init; } = 32;

    /// <summary>Prompts decoded together.</summary>
    [Range(1, 1024)]
    public int BatchSize { get; init; } = 16;

    /// <summary>Sample responses kept per part (harmful, over-refusal, accuracy) in the stored reports.</summary>
    [Range(0, 1000)]
    public int SamplesPerPart { get; init; } = 10;

    /// <summary>Sample responses per stage shown in the job's <c>safety.scores</c> (the stored report keeps <see cref="SamplesPerPart"/>).</summary>
    [Range(0, 100)]
    public int SamplesInJob { get; init; } = 3;
}
