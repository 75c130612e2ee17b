using FineTuneService.Contracts.Jobs;
using TorchSharp;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Models;

/// <summary>SwiGLU feed-forward block: <c>down(silu(gate(x)) * up(x))</c>.</summary>
public sealed class DecoderMlp : nn.Module<Tensor, Tensor>, IProjectionHost
{
    // Field names are checkpoint keys.
    private nn.Module<Tensor, Tensor> gate_proj;
    private nn.Module<Tensor, Tensor> up_proj;
    private nn.Module<Tensor, Tensor> down_proj;

    public DecoderMlp(DecoderConfig config) : base(nameof(DecoderMlp))
    {
        gate_proj = nn.Linear(config.HiddenSize, config.IntermediateSize, hasBias: config.HasMlpBias);
        up_proj = nn.Linear(config.HiddenSize, config.IntermediateSize, hasBias: config.HasMlpBias);
        down_proj = nn.Linear(config.IntermediateSize, config.HiddenSize, hasBias: config.HasMlpBias);
        RegisterComponents();
    }

    public IReadOnlyList<string> ProjectionNames => DecoderKeys.MlpProjections;

    public nn.Module<Tensor, Tensor> GetProjection(string name) => name switch
    {
        DecoderProjections.Gate => gate_proj,
        DecoderProjections.Up => up_proj,
        DecoderProjections.Down => down_proj,
        _ => throw DecoderKeys.UnknownProjection(name),
    };

    public void SetProjection(string name, nn.Module<Tensor, Tensor> projection)
    {
        switch (name)
        {
            case DecoderProjections.Gate: gate_proj = projection; break;
            case DecoderProjections.Up: up_proj = projection; break;
            case DecoderProjections.Down: down_proj = projection; break;
            default: throw DecoderKeys.UnknownProjection(name);
        }
        // Registering null drops the old child; the field and the registry must name the same module.
        register_module(name, null!);
        register_module(name, projection);
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var activated = nn.functional.silu(gate_proj.call(input)) * up_proj.call(input);
        return down_proj.call(activated).MoveToOuterDisposeScope();
    }
}
