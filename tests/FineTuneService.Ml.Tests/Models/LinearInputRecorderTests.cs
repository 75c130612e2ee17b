using FineTuneService.Ml.Models;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Tests.Models;

public sealed class LinearInputRecorderTests
{
    [Fact]
    public void Accumulates_input_sum_of_squares_per_channel()
    {
        var config = TinyModels.Llama();
        using var model = DecoderLM.CreateRandom(config, seed: 2);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var ids = tensor(new long[] { 1, 5, 9, 12, 4, 7 }).view(2, 3);
        const string qProj = "model.layers.0.self_attn.q_proj";
        const string downProj = "model.layers.1.mlp.down_proj";

        using var recorder = new LinearInputRecorder(model, name => name is qProj or downProj);
        using var output = model.Forward(ids, new DecoderForwardOptions { OutputHiddenStates = true });
        model.call(ids);

        Assert.Equal(new[] { qProj, downProj }.Order(), recorder.Names.Order());
        Assert.Equal(12, recorder.TokenCount(qProj));
        Assert.Equal(new long[] { config.IntermediateSize }, recorder.SumOfSquares(downProj).shape);
        Assert.Equal(ScalarType.Float32, recorder.SumOfSquares(qProj).dtype);

        // q_proj of layer 0 sees input_layernorm(embeddings), twice.
        var normed = model.Layers[0].InputLayerNorm.call(output.HiddenStates![0]);
        var expected = normed.pow(2).sum([0, 1]) * 2;
        Assert.True(expected.allclose(recorder.SumOfSquares(qProj), rtol: 1e-5, atol: 1e-6));
    }

    [Fact]
    public void Token_mask_skips_padding_and_dispose_removes_hooks()
    {
        using var model = DecoderLM.CreateRandom(TinyModels.Llama(), seed: 2);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var ids = tensor(new long[] { 1, 5, 9, 12, 4, 7 }).view(2, 3);
        const string name = "model.layers.1.self_attn.o_proj";

        var recorder = new LinearInputRecorder(model, n => n == name) { TokenMask = tensor(new long[] { 1, 1, 0, 1, 0, 0 }).view(2, 3) };
        model.call(ids);
        Assert.Equal(3, recorder.TokenCount(name));

        recorder.Dispose();
        model.call(ids);
        Assert.Equal(0, recorder.TokenCount(name));
    }

    [Fact]
    public void Layer_parameter_names_are_grouped_by_block()
    {
        using var model = DecoderLM.CreateRandom(TinyModels.Qwen2(), seed: 2);
        var layer = model.Layers[1];

        Assert.Equal("model.layers.1.", layer.KeyPrefix);
        Assert.Contains("model.layers.1.self_attn.q_proj.bias", layer.AttentionParameterNames);
        Assert.Equal(7, layer.AttentionParameterNames.Count);
        Assert.Equal(
            new[] { "model.layers.1.mlp.down_proj.weight", "model.layers.1.mlp.gate_proj.weight", "model.layers.1.mlp.up_proj.weight" },
            layer.MlpParameterNames.Order());
        var keys = model.state_dict().Keys.ToHashSet();
        Assert.All(layer.AttentionParameterNames.Concat(layer.MlpParameterNames), n => Assert.Contains(n, keys));
        Assert.Equal(3 * 7, model.Projections().Count());
    }
}
