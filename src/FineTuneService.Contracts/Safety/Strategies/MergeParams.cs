using System.ComponentModel;

namespace FineTuneService.Contracts.Safety;

/// <summary><c>merge</c>: theta = (1 - lambda) * theta_base + lambda * theta_ft.</summary>
public sealed record MergeParams(
    [property: Description("Weight of the fine-tuned model (0 = the base model, 1 = the fine-tuned one).")]
    double Lambda = 0.5) : ISafetyStrategyParams
{
    public IEnumerable<ParamError> Errors(ModelFacts model)
    {
        if (!(Lambda is >= 0 and <= 1)) yield return new("lambda", $"lambda must be in [0, 1], got {Lambda}.");
    }
}
