using System.ComponentModel;
using System.Text.Json.Serialization;

namespace FineTuneService.Contracts.Safety;

/// <summary>Wire names of the <see cref="MergeParams.Method"/> values.</summary>
public static class MergeMethods
{
    public const string Linear = "linear";
    public const string Ties = "ties";
    public const string Pcb = "pcb";

    public static readonly IReadOnlyList<string> All = [Linear, Ties, Pcb];

    public const double DefaultDensity = 0.2;
    public const double DefaultPcbRatio = 0.1;

    /// <summary>λ when the request leaves it out: 0.5 for linear, 1 for TIES and PCB (the papers' setting).</summary>
    public static double DefaultLambda(string method) => method == Linear ? 0.5 : 1.0;
}

/// <summary>
/// <c>merge</c>: after training, merge the fine-tuned weights with the base model's, theta = theta_base + lambda * tau,
/// where tau is the fine-tune update theta_ft - theta_base as the <see cref="Method"/> shapes it.
/// <para><c>linear</c>: tau as it is, i.e. (1 - lambda) theta_base + lambda theta_ft.</para>
/// <para><c>ties</c> (TIES-Merging, Yadav et al. 2023): trim each tensor of tau to its <see cref="Density"/> largest
/// magnitudes, elect each entry's sign by total mass over the merged updates and average the ones that agree.</para>
/// <para><c>pcb</c> (PCB-Merging, Du et al. 2024): score each entry by intra-balancing (its magnitude within its update)
/// times inter-balancing (its agreement with the other updates), keep the top <see cref="PcbRatio"/> of each tensor and
/// average the kept entries weighted by their scores.</para>
/// <para>The strategy merges one task vector (the fine-tune against its base): TIES's sign election then has a single
/// voter and PCB's weights cancel in its weighted mean, so both come down to keeping a share of each tensor's update
/// entries (by magnitude, or by PCB's score, which grows with the magnitude) and scaling it by lambda.</para>
/// </summary>
public sealed record MergeParams(
    [property: Description("Weight of the fine-tuned model (0 = the base model, 1 = the fine-tuned one); null = the method's default (0.5 for linear, 1 for ties and pcb).")]
    double? Lambda = null,
    [property: Description("linear (interpolate), ties (trim, elect signs, disjoint mean) or pcb (parameter competition balancing).")]
    string Method = MergeMethods.Linear,
    [property: Description("ties: share (0 to 1] of each tensor's update entries kept, largest magnitudes first (TIES's top-k).")]
    double Density = MergeMethods.DefaultDensity,
    [property: Description("pcb: share (0 to 1] of each tensor's update entries kept, highest balancing scores first.")]
    double PcbRatio = MergeMethods.DefaultPcbRatio) : ISafetyStrategyParams
{
    /// <summary>λ as applied: the given one or the method's default.</summary>
    [JsonIgnore]
    public double EffectiveLambda => Lambda ?? MergeMethods.DefaultLambda(Method);

    public IEnumerable<ParamError> Errors(ModelFacts model)
    {
        if (Lambda is { } lambda && !(lambda is >= 0 and <= 1)) yield return new("lambda", $"lambda must be in [0, 1], got {lambda}.");
        if (!MergeMethods.All.Contains(Method))
            yield return new("method", $"method must be one of {string.Join(", ", MergeMethods.All)}, got '{Method}'.");
        if (!(Density is > 0 and <= 1)) yield return new("density", $"density must be in (0, 1], got {Density}.");
        if (!(PcbRatio is > 0 and <= 1)) yield return new("pcb_ratio", $"pcb_ratio must be in (0, 1], got {PcbRatio}.");
        if (Method != MergeMethods.Ties && Density != MergeMethods.DefaultDensity) yield return new("density", "density applies to method ties only.");
        if (Method != MergeMethods.Pcb && PcbRatio != MergeMethods.DefaultPcbRatio) yield return new("pcb_ratio", "pcb_ratio applies to method pcb only.");
        if (Method != MergeMethods.Linear && model.LoraAdapter == true)
            yield return new("method", $"method {Method} merges the dense update of every weight, so it needs a full fine-tune; use linear with a LoRA adapter.");
    }
}
