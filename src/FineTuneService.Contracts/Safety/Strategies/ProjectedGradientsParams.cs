using System.ComponentModel;

namespace FineTuneService.Contracts.Safety;

/// <summary>Wire names of the <see cref="ProjectedGradientsParams.Variant"/> values.</summary>
public static class ProjectedGradientsVariants
{
    public const string Subspace = "subspace";
    public const string PcGrad = "pcgrad";
    public const string Config = "config";

    public static readonly IReadOnlyList<string> All = [Subspace, PcGrad, Config];
}

/// <summary>
/// <c>projected_gradients</c>: keep the task gradient from undoing safety.
/// <para><c>subspace</c>: remove the task gradient's component inside a rank-<see cref="Rank"/> safety subspace
/// (per weight matrix, from per-sample safety-loss gradients) where it conflicts with the safety gradient.</para>
/// <para><c>pcgrad</c>: on conflict, project the task gradient onto the normal plane of the safety gradient.</para>
/// <para><c>config</c>: on conflict, use the closed-form two-gradient ConFIG update of (task, safety).</para>
/// The safety gradients are re-estimated every <see cref="RefreshEvery"/> optimizer steps from
/// <see cref="SafetySamples"/> harmful-prompt/refusal pairs.
/// </summary>
public sealed record ProjectedGradientsParams(
    [property: Description("subspace (remove the conflicting part inside a low-rank safety subspace), pcgrad or config.")]
    string Variant = ProjectedGradientsVariants.Subspace,
    [property: Description("Rank of the per-matrix safety subspace (subspace variant).")]
    int Rank = 4,
    [property: Description("Optimizer steps between re-estimates of the safety gradients.")]
    int RefreshEvery = 50,
    [property: Description("Harmful-prompt/refusal pairs the safety gradients are estimated from.")]
    int SafetySamples = 8,
    [property: Description("Also remove the conflicting part on the right singular side (subspace variant only).")]
    bool TwoSided = false) : ISafetyStrategyParams
{
    public IEnumerable<ParamError> Errors(ModelFacts model)
    {
        if (!ProjectedGradientsVariants.All.Contains(Variant))
            yield return new("variant", $"variant must be one of {string.Join(", ", ProjectedGradientsVariants.All)}, got '{Variant}'.");
        if (Rank < 1) yield return new("rank", $"rank must be >= 1, got {Rank}.");
        if (RefreshEvery < 1) yield return new("refresh_every", $"refresh_every must be >= 1, got {RefreshEvery}.");
        if (SafetySamples < 1) yield return new("safety_samples", $"safety_samples must be >= 1, got {SafetySamples}.");
        if (TwoSided && Variant != ProjectedGradientsVariants.Subspace) yield return new("two_sided", "two_sided applies to the subspace variant only.");
    }
}
