namespace FineTuneService.Ml.Safety.Strategies.FrozenLayers;

/// <summary>
/// How the safety layers are located when a <c>frozen_layers</c> request gives no range (see <see cref="SafetyLayerLocator"/>).
/// Fractions are of the maximum N-M gap; alpha scales the candidate range's attention and MLP weights in the
/// over-rejection test.
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
