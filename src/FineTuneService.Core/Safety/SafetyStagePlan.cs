using FineTuneService.Contracts.Safety;
using FineTuneService.Core.Domain;

namespace FineTuneService.Core.Safety;

/// <summary>
/// The safety evaluation stages a job runs, in the order the worker scores them (see <see cref="SafetyStages"/>):
/// the root base model when the job continues training a fine-tuned model or checkpoint, the base (the parent for
/// continued training), the trained weights, then the weights after each after-training strategy in run order. The
/// worker scores by it and the API's estimate counts it, so the two cannot disagree.
/// </summary>
public sealed class SafetyStagePlan
{
    private SafetyStagePlan(IReadOnlyList<string> stages, IReadOnlyList<string> trainedStages)
    {
        Stages = stages;
        TrainedStages = trainedStages;
    }

    /// <summary>Every stage, in evaluation order.</summary>
    public IReadOnlyList<string> Stages { get; }

    /// <summary>The stages of the weights the job trains: <see cref="SafetyStages.AfterTraining"/>, then one per after-training strategy.</summary>
    public IReadOnlyList<string> TrainedStages { get; }

    /// <summary>Whether the root base model is scored besides the base (continued training).</summary>
    public bool ScoresRootBase => Stages.Contains(SafetyStages.RootBase);

    /// <summary>The plan of a job with safety plan <paramref name="safety"/>.</summary>
    /// <param name="continuesTraining">The job starts from a fine-tuned model or checkpoint (its lineage depth is above 0).</param>
    public static SafetyStagePlan For(SafetyPlan safety, bool continuesTraining)
    {
        // An after-training strategy changes the weights, and its stage is named for it (its PostTrainingStep is its registry name).
        List<string> trained =
        [
            SafetyStages.AfterTraining,
            .. safety.AfterTraining.Select(s => SafetyStages.After(s.Strategy.Name)),
        ];
        List<string> all = [.. continuesTraining ? [SafetyStages.RootBase] : Array.Empty<string>(), SafetyStages.Base, .. trained];
        return new SafetyStagePlan(all, trained);
    }
}
