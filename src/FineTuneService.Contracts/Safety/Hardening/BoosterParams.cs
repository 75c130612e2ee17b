using System.ComponentModel;
using System.Text.Json.Serialization;

namespace FineTuneService.Contracts.Safety.Hardening;

/// <summary>
/// <c>booster</c> hardening of a base model (Huang et al., "Booster: Tackling Harmful Fine-tuning for Large Language
/// Models via Attenuating Harmful Perturbation"): minimise f(w) + λ (h(w) − h(w − α ∇h(w) / ‖∇h(w)‖)), with f the
/// alignment loss (harmful prompts → refusals) and h the harmful loss (harmful prompts → harmful answers). The second
/// term is the drop of the harmful loss after one normalised harmful-gradient step: making it small leaves a later
/// harmful fine-tune little to gain per step. λ = 5 and α = 0.1 are the defaults of the paper's code. A share of each
/// alignment batch can be benign pairs (training-set prompts with the base's own answers), so that f does not push
/// every prompt toward a refusal.
/// </summary>
public sealed record BoosterParams(
    [property: Description("Weight λ of the harmful-loss drop (the paper's default 5).")] double Lambda = 5,
    [property: Description("Size α of the simulated normalised harmful-gradient step (the paper's default 0.1).")] double Alpha = 0.1,
    [property: Description("Optimizer steps of the hardening.")] int Steps = 100,
    [property: Description("Learning rate (AdamW, constant, as the paper's alignment script).")] double LearningRate = 1e-4,
    [property: Description("Pairs per step from each of the alignment and harmful sets.")] int BatchSize = 8,
    [property: Description("Alignment targets: \"base\" (default) aligns on the base model's own greedy answers to the shipped refusal prompts, "
                           + "keeping the prompts it refuses by the keyword refusal rule; \"shipped\" on the shipped Safety-Tuned LLaMAs refusals.")]
    string AlignmentAnswers = BoosterParams.BaseAnswers,
    [property: Description("Share of each alignment batch that is benign pairs: training-set instructions (Dolly, Self-Instruct, SST-2 train) with the base model's "
                           + "own greedy answers, kept where the keyword refusal rule finds no refusal; 0 aligns on refusals only. In [0, 1); each batch has "
                           + "round(benign_share × batch_size) benign pairs, at least 1 and at most batch_size − 1 (so batch_size ≥ 2 when above 0).")]
    double BenignShare = BoosterParams.DefaultBenignShare) : IHardeningParams
{
    /// <summary>On safetune-tiny 0.75 kept over-refusal at the base's and the refusals (docs/benchmarks/booster, third run).</summary>
    public const double DefaultBenignShare = 0.75;

    /// <summary>
    /// Benign pairs in each alignment batch of <see cref="BatchSize"/>, the rest refusals: the share rounded, kept
    /// within [1, batch_size − 1] so that a small batch still holds both kinds (batch 2 at the default: one of each).
    /// </summary>
    [JsonIgnore]
    public int BenignPairsPerBatch => BenignShare <= 0 || BatchSize < 2 ? 0
        : Math.Clamp((int)Math.Round(BenignShare * BatchSize, MidpointRounding.AwayFromZero), 1, BatchSize - 1);

    /// <summary>Align on the base model's own refusals, in the form it already produces.</summary>
    public const string BaseAnswers = "base";

    /// <summary>Align on the shipped Safety-Tuned LLaMAs refusals (long explanations).</summary>
    public const string ShippedAnswers = "shipped";

    public static IReadOnlyList<string> AlignmentAnswerSources { get; } = [BaseAnswers, ShippedAnswers];

    public IEnumerable<ParamError> Errors()
    {
        if (!(Lambda is >= 0 and <= 100)) yield return new("lambda", $"lambda must be in [0, 100], got {Lambda}.");
        if (!(Alpha is > 0 and <= 10)) yield return new("alpha", $"alpha must be in (0, 10], got {Alpha}.");
        if (Steps is < 1 or > 100_000) yield return new("steps", $"steps must be in [1, 100000], got {Steps}.");
        if (!(LearningRate is > 0 and <= 1)) yield return new("learning_rate", $"learning_rate must be in (0, 1], got {LearningRate}.");
        if (BatchSize is < 1 or > 256) yield return new("batch_size", $"batch_size must be in [1, 256], got {BatchSize}.");
        if (!AlignmentAnswerSources.Contains(AlignmentAnswers))
            yield return new("alignment_answers", $"alignment_answers must be one of {string.Join(", ", AlignmentAnswerSources)}, got '{AlignmentAnswers}'.");
        if (!(BenignShare is >= 0 and < 1))
            yield return new("benign_share", $"benign_share must be in [0, 1), got {BenignShare}.");
        else if (BenignShare > 0 && BatchSize == 1)
            yield return new("benign_share", $"benign_share {BenignShare} needs batch_size 2 or more (one benign and one refusal pair per batch); "
                                             + "with batch_size 1 set benign_share to 0.");
    }
}
