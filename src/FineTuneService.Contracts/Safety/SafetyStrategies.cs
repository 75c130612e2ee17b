namespace FineTuneService.Contracts.Safety;

/// <summary>
/// Every safety strategy the service offers: one line each. Adding a strategy is its parameters record, one line
/// here, and the engine class that runs it (see CONTRIBUTING.md).
/// </summary>
public static class SafetyStrategies
{
    /// <summary>The exclusive group of the strategies that merge the fine-tune back towards the base model.</summary>
    private const string Merging = "merge";

    public static SafetyStrategyRegistry Registry { get; } = new(
    [
        SafetyStrategy.Define<FrozenLayersParams>("frozen_layers", SafetyPhase.BeforeTraining,
            "Freezes the attention and MLP weights of the base model's safety layers (SPPFT)."),
        SafetyStrategy.Define<ProjectedGradientsParams>("projected_gradients", SafetyPhase.EveryStep,
            "Edits every step's task gradient where it conflicts with the gradient of a refusal loss (SPF-style subspace projection, PCGrad or ConFIG)."),
        SafetyStrategy.Define<AntidoteParams>("antidote", SafetyPhase.AfterTraining,
            "After training, prunes the part of the fine-tune update that matters most on harmful answers (Antidote, Wanda scores)."),
        SafetyStrategy.Define<MergeParams>("merge", SafetyPhase.AfterTraining,
            "After training, merges the fine-tuned weights with the base model's: linear interpolation, TIES or PCB.", exclusiveGroup: Merging),
        SafetyStrategy.Define<SafeMergeParams>("safemerge", SafetyPhase.AfterTraining,
            "After training, merges with the base model only the layers whose update reaches into safety-critical directions (SafeMERGE).",
            exclusiveGroup: Merging),
        SafetyStrategy.Define<SafetyPatchParams>("safety_patch", SafetyPhase.AfterTraining,
            "After training, a few refusal-loss steps on up to 8 harmful prompts with refusals, restricted to each weight's low-rank safety subspace (after Safety at One Shot)."),
    ]);
}
