using FineTuneService.Datasets.Corpus;
using FineTuneService.Datasets.Evaluation;
using FineTuneService.Datasets;

namespace FineTuneService.Research.Benchmarks;

/// <summary>
/// A labelled task the safety benchmark fine-tunes on (its training rows, phrased as instructions) and scores FA on
/// (its evaluation split in <see cref="FineTuneService.Ml.Evaluation.PromptSets.ShippedPromptSets.TaskSplit"/>, under the same name).
/// </summary>
public sealed record SafetyBenchmarkTask(string Name, string TrainingSplit, string EvaluationSplit, Func<ShippedData, IEnumerable<ChatExample>> TrainingExamples)
{
    public static SafetyBenchmarkTask Sst2 { get; } = new("sst2", "SST-2 train", "SST-2 dev", d => d.Sst2("train").Select(TaskPrompts.Sst2Example));

    public static SafetyBenchmarkTask AgNews { get; } = new("ag_news", "AG News train", "AG News test", d => d.AgNews("train").Select(TaskPrompts.AgNewsExample));

    public static IReadOnlyList<SafetyBenchmarkTask> All { get; } = [Sst2, AgNews];

    public static SafetyBenchmarkTask? Find(string name) => All.FirstOrDefault(t => t.Name == name);

    public static SafetyBenchmarkTask Named(string name) =>
        Find(name) ?? throw new ArgumentException($"Unknown task '{name}' (expected {string.Join(" or ", All.Select(t => t.Name))}).", nameof(name));
}
