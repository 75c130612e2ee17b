using FineTuneService.Datasets;
using FineTuneService.Ml.Models;
using FineTuneService.Ml.Safety.Strategies;

namespace FineTuneService.Ml.Safety.Hardening;

/// <summary>
/// The provider's alignment-stage hardening of a base model, before any tenant fine-tunes it: one implementation per
/// method (<see cref="BoosterHardener"/> now; a perturbation-aware method such as Vaccine would be a second one).
/// </summary>
public interface IBaseModelHardener
{
    /// <summary>Wire name of the method, e.g. "booster".</summary>
    string Method { get; }

    /// <summary>The pairs this method trains on, from the shipped sets: as shipped unless the method says otherwise.</summary>
    /// <param name="baseAnswers">The base model's own answers, for a method that aligns on them.</param>
    HardeningSets TrainingSets(HardeningSets shipped, BaseModelAnswers baseAnswers, CancellationToken cancellationToken = default) => shipped;

    /// <summary>Hardens <paramref name="model"/>: its weights change in place.</summary>
    /// <param name="onStep">Called after each optimizer step with its losses (the service posts them as progress events).</param>
    HardeningReport Harden(DecoderLM model, HardeningData data, CancellationToken cancellationToken = default, Action<HardeningStep>? onStep = null);
}

/// <summary>
/// The chat pairs hardening draws on, from the shipped training sets, never an evaluation prompt: the safety pairs
/// (refusals and harmful answers) and benign pairs (training-set instructions) for a method that mixes them into its
/// alignment batches.
/// </summary>
public sealed record HardeningSets(SafetyData Safety, IReadOnlyList<ChatExample> Benign);

/// <summary>
/// What hardening trains on: alignment pairs (harmful prompt → refusal), harmful pairs (harmful prompt → harmful
/// answer) and benign pairs (benign prompt → the base's own answer; empty unless the method mixes them into its
/// alignment batches), all from the shipped training sets, never an evaluation prompt.
/// </summary>
public sealed record HardeningData(IReadOnlyList<TokenizedExample> Alignment, IReadOnlyList<TokenizedExample> Harmful, int MaxSequenceLength,
    IReadOnlyList<TokenizedExample>? Benign = null)
{
    public IReadOnlyList<TokenizedExample> BenignPairs => Benign ?? [];
}

/// <summary>One finished step (1-based) of <see cref="HardeningReport.Steps"/>, with its alignment loss and harmful-loss drop.</summary>
public sealed record HardeningStep(int Step, int Steps, double AlignmentLoss, double HarmfulLossDrop);

/// <summary>The first and last step's alignment loss and harmful-loss drop, for the job's events and the model's lineage.</summary>
public sealed record HardeningReport(string Method, int Steps, double FirstAlignmentLoss, double LastAlignmentLoss,
    double FirstHarmfulLossDrop, double LastHarmfulLossDrop);
