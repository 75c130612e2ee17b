using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Lora;

/// <summary>
/// A frozen linear layer plus a trainable low-rank update, <c>y = xWᵀ + b + scaling · B(A(dropout(x)))</c>.
/// Parameter names follow PEFT: the base keeps <c>weight</c>/<c>bias</c> (so the HF key stays <c>...q_proj.weight</c>),
/// the factors are <c>lora_A.weight</c> [r, in] and <c>lora_B.weight</c> [out, r].
/// </summary>
public sealed class LoraLinear : nn.Module<Tensor, Tensor>
{
    // Field names are checkpoint keys.
    private Parameter weight;
    private Parameter? bias;
    private readonly Linear lora_A;
    private readonly Linear lora_B;

    private readonly double _dropout;

    /// <summary>Wraps <paramref name="baseLayer"/>; A is kaiming-uniform (a = √5) like PEFT, B is zero, so the output is unchanged.</summary>
    public LoraLinear(Linear baseLayer, int rank, double scaling, double dropout, Generator? generator = null) : base(nameof(LoraLinear))
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rank);
        weight = baseLayer.weight!;
        bias = baseLayer.bias;
        weight.requires_grad = false;
        if (bias is not null) bias.requires_grad = false;
        InFeatures = baseLayer.in_features;
        OutFeatures = baseLayer.out_features;
        Rank = rank;
        Scaling = scaling;
        _dropout = dropout;

        lora_A = nn.Linear(InFeatures, rank, hasBias: false, device: weight.device, dtype: weight.dtype);
        lora_B = nn.Linear(rank, OutFeatures, hasBias: false, device: weight.device, dtype: weight.dtype);
        using (no_grad())
        {
            // kaiming_uniform_(a=sqrt(5)) on [r, in] has bound 1/sqrt(in).
            var bound = 1.0 / Math.Sqrt(InFeatures);
            lora_A.weight!.uniform_(-bound, bound, generator);
            lora_B.weight!.zero_();
        }
        RegisterComponents();
    }

    public long InFeatures { get; }
    public long OutFeatures { get; }
    public int Rank { get; }
    public double Scaling { get; }

    /// <summary>Whether the update is currently folded into <see cref="Weight"/>.</summary>
    public bool Merged { get; private set; }

    public Parameter Weight => weight;
    public Parameter? Bias => bias;
    public Parameter LoraA => lora_A.weight!;
    public Parameter LoraB => lora_B.weight!;

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var result = nn.functional.linear(input, weight, bias);
        if (Merged) return result.MoveToOuterDisposeScope();

        var x = input.to_type(LoraA.dtype);
        if (training && _dropout > 0) x = nn.functional.dropout(x, _dropout, training: true);
        var update = lora_B.call(lora_A.call(x)) * Scaling;
        return (result + update.to_type(result.dtype)).MoveToOuterDisposeScope();
    }

    /// <summary>scaling · B·A, [out, in], in the base weight's type.</summary>
    public Tensor Delta()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return (LoraB.matmul(LoraA) * Scaling).to_type(weight.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>Adds the update into the base weight (inference); <see cref="Unmerge"/> undoes it.</summary>
    public void Merge()
    {
        if (Merged) return;
        using var delta = Delta();
        using (no_grad()) weight.add_(delta);
        Merged = true;
    }

    public void Unmerge()
    {
        if (!Merged) return;
        using var delta = Delta();
        using (no_grad()) weight.sub_(delta);
        Merged = false;
    }

    /// <summary>A plain linear layer with the update folded in (merge-and-unload); this module is left unmerged.</summary>
    public Linear ToMergedLinear()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var merged = Merged ? weight.detach().clone() : weight.detach() + Delta();
        var mergedWeight = new Parameter(merged.DetachFromDisposeScope(), requires_grad: true);
        var mergedBias = bias is null ? null : new Parameter(bias.detach().clone().DetachFromDisposeScope(), requires_grad: true);
        return nn.Linear(mergedWeight, mergedBias);
    }
}
