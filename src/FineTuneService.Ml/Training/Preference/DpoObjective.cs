using FineTuneService.Datasets;
using FineTuneService.Datasets.Sft;
using TorchSharp;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Training.Preference;

/// <summary>One DPO step's loss (with its graph) and the figures logged beside it.</summary>
/// <param name="RewardMargin">Mean of β·(policy − reference log-ratio) of the chosen minus that of the rejected answer.</param>
/// <param name="RewardAccuracy">Share of pairs whose margin is positive.</param>
public sealed record DpoLoss(Tensor Loss, double RewardMargin, double RewardAccuracy);

/// <summary>
/// Direct Preference Optimisation (Rafailov et al., 2023): −log σ(β·[(log π(y_w|x) − log π_ref(y_w|x)) −
/// (log π(y_l|x) − log π_ref(y_l|x))]), over the summed log-probabilities of the answer tokens only. The reference
/// log-probabilities come from a frozen copy of the starting weights (full fine-tuning) or from the same model with
/// its adapter switched off (LoRA), computed under <c>no_grad</c>.
/// </summary>
public static class DpoObjective
{
    /// <summary>The paper's default strength of the implicit KL penalty.</summary>
    public const double DefaultBeta = 0.1;

    /// <summary>
    /// Summed log-probability of each row's labelled tokens: <paramref name="logits"/> [B, T, V] predict
    /// <paramref name="labels"/> [B, T] (the next token, or <c>ignoreIndex</c> where it does not count, as
    /// <see cref="TrainingRows"/> builds them). Computed in fp32. Returns [B].
    /// </summary>
    public static Tensor SequenceLogProbs(Tensor logits, Tensor labels, long ignoreIndex = TrainingRow.IgnoreIndex)
    {
        using var scope = NewDisposeScope();
        var counted = labels.ne(ignoreIndex);
        var targets = labels.masked_fill(counted.logical_not(), 0).unsqueeze(-1);
        var logProbs = nn.functional.log_softmax(logits.to(ScalarType.Float32), -1).gather(-1, targets).squeeze(-1);
        return (logProbs * counted.to(ScalarType.Float32)).sum(1).MoveToOuterDisposeScope();
    }

    /// <summary>The DPO loss of a batch of pairs from the policy's and the reference's summed answer log-probabilities ([B] each).</summary>
    public static DpoLoss Loss(Tensor policyChosen, Tensor policyRejected, Tensor referenceChosen, Tensor referenceRejected, double beta = DefaultBeta)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(beta);
        using var scope = NewDisposeScope();
        var margins = beta * ((policyChosen - referenceChosen) - (policyRejected - referenceRejected));
        var loss = nn.functional.logsigmoid(margins).mean().neg();
        using var noGrad = no_grad();
        var margin = margins.mean().ToDouble();
        var accuracy = margins.gt(0).to(ScalarType.Float32).mean().ToDouble();
        return new DpoLoss(loss.MoveToOuterDisposeScope(), margin, accuracy);
    }
}
