using System.ComponentModel;

namespace FineTuneService.Contracts.Safety;

/// <summary><c>antidote</c>: after training, Wanda-prune the top <see cref="DenseRatio"/> of the fine-tune update per output row.</summary>
public sealed record AntidoteParams(
    [property: Description("Share (0 to 1) of each output row of the fine-tune update that is pruned, highest Wanda scores first.")]
    double DenseRatio = 0.1,
    [property: Description("Harmful prompt/answer pairs whose activations score the update.")]
    int CalibrationSamples = 16) : ISafetyStrategyParams
{
    public IEnumerable<ParamError> Errors(ModelFacts model)
    {
        if (!(DenseRatio is >= 0 and <= 1)) yield return new("dense_ratio", $"dense_ratio must be in [0, 1], got {DenseRatio}.");
        if (CalibrationSamples < 1) yield return new("calibration_samples", $"calibration_samples must be >= 1, got {CalibrationSamples}.");
    }
}
