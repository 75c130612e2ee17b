using FineTuneService.Datasets;
using FineTuneService.Ml.Safety.Strategies.FrozenLayers;
using FineTuneService.Ml.Safety.Strategies.Hooks;
using FineTuneService.Ml.Training;

namespace FineTuneService.Ml.Safety.Strategies;

/// <summary>What the strategies need beyond the request: safety data and the stored safety layers of the base model.</summary>
/// <param name="SafetyExamples">Harmful prompts with refusal answers (projected_gradients, safemerge).</param>
/// <param name="RealignmentExamples">Harmful prompts with harmful answers (antidote's calibration set).</param>
/// <param name="SafetyLayers">Located safety layers of the base model (frozen_layers without an explicit range).</param>
public sealed record SafetyResources(
    IReadOnlyList<TokenizedExample>? SafetyExamples = null,
    IReadOnlyList<TokenizedExample>? RealignmentExamples = null,
    SafetyLayerLocation? SafetyLayers = null);

/// <summary>
/// Builds the trainer hooks of a safety request, in phase order (see <see cref="SafetyStrategyPlan"/>). Hooks compose:
/// e.g. frozen_layers + projected_gradients + antidote freeze first, edit the remaining gradients each step, and prune
/// after the last one. Everything random is seeded from the job seed (<see cref="SftTrainerOptions.Seed"/>).
/// </summary>
public static class SafetyStrategyFactory
{
    /// <exception cref="SafetyStrategyConfigurationException">Unknown names, bad params or missing resources.</exception>
    public static IReadOnlyList<ITrainingStrategy> Create(string json, SafetyResources resources) => Create(SafetyStrategyPlan.Parse(json), resources);

    public static IReadOnlyList<ITrainingStrategy> Create(SafetyStrategyPlan plan, SafetyResources resources)
    {
        var hooks = new List<ITrainingStrategy>();
        if (plan.FrozenLayers is { } frozen)
        {
            var (first, last) = frozen is { FirstLayer: { } f, LastLayer: { } l }
                ? (f, l)
                : resources.SafetyLayers is { } located
                    ? (located.FirstLayer, located.LastLayer)
                    : throw new SafetyStrategyConfigurationException("frozen_layers needs first_layer and last_layer, or safety layers located for this base model.");
            hooks.Add(new FrozenLayersHook(first, last));
        }
        if (plan.ProjectedGradients is { } projected)
            hooks.Add(new ProjectedGradientsHook(projected, Require(resources.SafetyExamples, SafetyStrategyNames.ProjectedGradients, "harmful prompts with refusal answers")));
        if (plan.Antidote is { } antidote)
            hooks.Add(new AntidoteHook(antidote, Require(resources.RealignmentExamples, SafetyStrategyNames.Antidote, "harmful prompts with harmful answers")));
        if (plan.Merge is { } merge) hooks.Add(new MergeHook(merge));
        if (plan.SafeMerge is { } safeMerge)
            hooks.Add(new SafeMergeHook(safeMerge, Require(resources.SafetyExamples, SafetyStrategyNames.SafeMerge, "harmful prompts with refusal answers")));
        return hooks;
    }

    private static IReadOnlyList<TokenizedExample> Require(IReadOnlyList<TokenizedExample>? examples, string strategy, string what) =>
        examples is { Count: > 0 } ? examples : throw new SafetyStrategyConfigurationException($"{strategy} needs a safety data set ({what}); none was provided.");
}
