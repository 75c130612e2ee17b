// Torch-free on purpose: the API validates fine-tuning requests against these names and records, so this file can be
// mirrored (or linked) into projects that must not load libtorch. Keep it free of TorchSharp types.
namespace FineTuneService.Ml.Safety.Strategies;

/// <summary>Wire names of the safety strategies, as used in <c>{"strategy": [...], "params": {...}}</c>.</summary>
public static class SafetyStrategyNames
{
    public const string None = "none";
    public const string FrozenLayers = "frozen_layers";
    public const string ProjectedGradients = "projected_gradients";
    public const string Antidote = "antidote";
    public const string Merge = "merge";
    public const string SafeMerge = "safemerge";

    public static readonly IReadOnlyList<string> All = [None, FrozenLayers, ProjectedGradients, Antidote, Merge, SafeMerge];
}

/// <summary>Wire names of the <see cref="ProjectedGradientsParams.Variant"/> values.</summary>
public static class ProjectedGradientsVariants
{
    public const string Subspace = "subspace";
    public const string PcGrad = "pcgrad";
    public const string Config = "config";

    public static readonly IReadOnlyList<string> All = [Subspace, PcGrad, Config];
}

/// <summary>
/// <c>frozen_layers</c>: freeze attention and MLP weights of the safety layers before training (SPPFT).
/// Either give the inclusive range <see cref="FirstLayer"/>..<see cref="LastLayer"/>, or leave both null to use the
/// range located for the base model (<see cref="SafetyLayerLocatorParams"/>).
/// </summary>
public sealed record FrozenLayersParams(int? FirstLayer = null, int? LastLayer = null)
{
    public IEnumerable<string> Errors()
    {
        if (FirstLayer is null != LastLayer is null) yield return "first_layer and last_layer must be given together (or both left out to use the located safety layers).";
        if (FirstLayer < 0) yield return $"first_layer must be >= 0, got {FirstLayer}.";
        if (LastLayer < FirstLayer) yield return $"last_layer must be >= first_layer, got {FirstLayer}..{LastLayer}.";
    }
}

/// <summary>
/// How the safety layers are located when no range is given (see <c>SafetyLayerLocator</c>). Fractions are of the
/// maximum N-M gap; alpha scales the candidate range's attention and MLP weights in the over-rejection test.
/// </summary>
public sealed record SafetyLayerLocatorParams(
    double StartFraction = 0.1,
    double EndFraction = 0.9,
    double ScaleAlpha = 1.1,
    int SearchRadius = 2)
{
    public IEnumerable<string> Errors()
    {
        if (!(StartFraction > 0 && StartFraction <= EndFraction && EndFraction <= 1))
            yield return $"Need 0 < start_fraction <= end_fraction <= 1, got {StartFraction} and {EndFraction}.";
        if (!(ScaleAlpha > 1)) yield return $"scale_alpha must be > 1, got {ScaleAlpha}.";
        if (SearchRadius < 0) yield return $"search_radius must be >= 0, got {SearchRadius}.";
    }
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
    string Variant = ProjectedGradientsVariants.Subspace,
    int Rank = 4,
    int RefreshEvery = 50,
    int SafetySamples = 8,
    bool TwoSided = false)
{
    public IEnumerable<string> Errors()
    {
        if (!ProjectedGradientsVariants.All.Contains(Variant))
            yield return $"variant must be one of {string.Join(", ", ProjectedGradientsVariants.All)}, got '{Variant}'.";
        if (Rank < 1) yield return $"rank must be >= 1, got {Rank}.";
        if (RefreshEvery < 1) yield return $"refresh_every must be >= 1, got {RefreshEvery}.";
        if (SafetySamples < 1) yield return $"safety_samples must be >= 1, got {SafetySamples}.";
        if (TwoSided && Variant != ProjectedGradientsVariants.Subspace) yield return "two_sided applies to the subspace variant only.";
    }
}

/// <summary><c>antidote</c>: after training, Wanda-prune the top <see cref="DenseRatio"/> of the fine-tune update per output row.</summary>
public sealed record AntidoteParams(double DenseRatio = 0.1, int CalibrationSamples = 16)
{
    public IEnumerable<string> Errors()
    {
        if (!(DenseRatio is >= 0 and <= 1)) yield return $"dense_ratio must be in [0, 1], got {DenseRatio}.";
        if (CalibrationSamples < 1) yield return $"calibration_samples must be >= 1, got {CalibrationSamples}.";
    }
}

/// <summary><c>merge</c>: theta = (1 - lambda) * theta_base + lambda * theta_ft.</summary>
public sealed record MergeParams(double Lambda = 0.5)
{
    public IEnumerable<string> Errors()
    {
        if (!(Lambda is >= 0 and <= 1)) yield return $"lambda must be in [0, 1], got {Lambda}.";
    }
}

/// <summary>
/// <c>safemerge</c>: merge (with <see cref="Lambda"/>) only the layers whose update drifts away from the safety subspace,
/// i.e. whose cosine similarity between delta W and its projection onto the safety subspace is below <see cref="Threshold"/>.
/// </summary>
public sealed record SafeMergeParams(double Lambda = 0.5, double Threshold = 0.35, int Rank = 4, int SafetySamples = 8)
{
    public IEnumerable<string> Errors()
    {
        if (!(Lambda is >= 0 and <= 1)) yield return $"lambda must be in [0, 1], got {Lambda}.";
        if (!(Threshold is >= 0 and <= 1)) yield return $"threshold must be in [0, 1], got {Threshold}.";
        if (Rank < 1) yield return $"rank must be >= 1, got {Rank}.";
        if (SafetySamples < 1) yield return $"safety_samples must be >= 1, got {SafetySamples}.";
    }
}
