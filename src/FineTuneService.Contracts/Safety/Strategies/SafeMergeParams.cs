using System.ComponentModel;

namespace FineTuneService.Contracts.Safety;

/// <summary>
/// <c>safemerge</c>: merge with the base (with <see cref="Lambda"/>) only the layers whose update reaches into
/// safety-critical directions, i.e. whose cosine similarity between delta W and its projection onto the weight's
/// safety subspace is at least <see cref="Threshold"/>; the other layers keep their fine-tuned weights.
/// </summary>
public sealed record SafeMergeParams(
    [property: Description("Weight of the fine-tuned layer in a merged layer (0 to 1).")]
    double Lambda = 0.5,
    [property: Description("Layers whose update has at least this share (0 to 1) inside the safety subspace are merged.")]
    double Threshold = 0.35,
    [property: Description("Rank of each weight's safety subspace.")]
    int Rank = 4,
    [property: Description("Harmful-prompt/refusal pairs the safety subspaces are estimated from.")]
    int SafetySamples = 8) : ISafetyStrategyParams
{
    public IEnumerable<ParamError> Errors(ModelFacts model)
    {
        if (!(Lambda is >= 0 and <= 1)) yield return new("lambda", $"lambda must be in [0, 1], got {Lambda}.");
        if (!(Threshold is >= 0 and <= 1)) yield return new("threshold", $"threshold must be in [0, 1], got {Threshold}.");
        if (Rank < 1) yield return new("rank", $"rank must be >= 1, got {Rank}.");
        if (SafetySamples < 1) yield return new("safety_samples", $"safety_samples must be >= 1, got {SafetySamples}.");
    }
}
