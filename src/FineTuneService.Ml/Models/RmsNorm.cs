using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Models;

/// <summary>Root-mean-square layer norm computed in fp32, as in Llama/Qwen2 (<c>weight * x / rms(x)</c>).</summary>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    // Field name is the checkpoint key ("...layernorm.weight").
    private Parameter weight;
    private readonly double _eps;

    public RmsNorm(long dimension, double eps) : base(nameof(RmsNorm))
    {
        weight = new Parameter(ones(dimension));
        _eps = eps;
        RegisterComponents();
    }

    public Parameter Weight => weight;

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = input.to_type(ScalarType.Float32);
        var normalized = x * rsqrt(x.pow(2).mean([-1], keepdim: true) + _eps);
        return (weight * normalized.to_type(input.dtype)).MoveToOuterDisposeScope();
    }
}
