using System.ComponentModel;

namespace FineTuneService.Contracts.Safety;

/// <summary>
/// <c>safety_patch</c>: after training, a few gradient steps on <see cref="Examples"/> harmful-prompt/refusal pairs
/// (after "Safety at One Shot", which patches a fine-tuned model with a single safety instance), each step restricted
/// to the low-rank safety subspace of every weight: the rank-<see cref="Rank"/> span of the per-sample refusal-loss
/// gradients of <see cref="SafetySamples"/> pairs, estimated on the fine-tuned weights as <c>projected_gradients</c>
/// estimates it. Plain gradient descent (no momentum, which would leave the subspace), global norm clipped to 1.
/// </summary>
public sealed record SafetyPatchParams(
    [property: Description("Harmful-prompt/refusal pairs the patch trains on (1 to 8; the paper uses one).")]
    int Examples = 1,
    [property: Description("Gradient steps of the patch.")]
    int Steps = 10,
    [property: Description("Step size of the patch's gradient descent (the gradient's global norm is clipped to 1).")]
    double LearningRate = 0.05,
    [property: Description("Rank of each weight's safety subspace the steps are projected onto.")]
    int Rank = 4,
    [property: Description("Harmful-prompt/refusal pairs the safety subspace is estimated from.")]
    int SafetySamples = 8) : ISafetyStrategyParams
{
    public const int MaxExamples = 8;

    public IEnumerable<ParamError> Errors(ModelFacts model)
    {
        if (Examples is < 1 or > MaxExamples) yield return new("examples", $"examples must be in [1, {MaxExamples}], got {Examples}.");
        if (Steps is < 1 or > 1000) yield return new("steps", $"steps must be in [1, 1000], got {Steps}.");
        if (!(LearningRate is > 0 and <= 10)) yield return new("learning_rate", $"learning_rate must be in (0, 10], got {LearningRate}.");
        if (Rank < 1) yield return new("rank", $"rank must be >= 1, got {Rank}.");
        if (SafetySamples < 1) yield return new("safety_samples", $"safety_samples must be >= 1, got {SafetySamples}.");
    }
}
