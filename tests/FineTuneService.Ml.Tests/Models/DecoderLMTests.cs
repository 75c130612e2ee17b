using FineTuneService.Ml.Models;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Tests.Models;

public sealed class DecoderLMTests
{
    [Fact]
    public void Llama_parameter_names_are_hugging_face_keys()
    {
        using var model = DecoderLM.CreateRandom(TinyModels.Llama(), seed: 1);
        var keys = model.state_dict().Keys.ToHashSet();

        string[] expected =
        [
            "model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
            "model.layers.1.self_attn.q_proj.weight", "model.layers.1.self_attn.k_proj.weight",
            "model.layers.1.self_attn.v_proj.weight", "model.layers.1.self_attn.o_proj.weight",
            "model.layers.1.mlp.gate_proj.weight", "model.layers.1.mlp.up_proj.weight", "model.layers.1.mlp.down_proj.weight",
            "model.layers.1.input_layernorm.weight", "model.layers.1.post_attention_layernorm.weight",
        ];
        Assert.All(expected, key => Assert.Contains(key, keys));
        Assert.Equal(3 + 2 * 9, keys.Count);
        Assert.DoesNotContain(keys, k => k.EndsWith(".bias", StringComparison.Ordinal));
    }

    [Fact]
    public void Qwen2_has_qkv_bias_and_no_lm_head_when_tied()
    {
        using var model = DecoderLM.CreateRandom(TinyModels.Qwen2(tied: true), seed: 1);
        var keys = model.state_dict().Keys.ToHashSet();

        Assert.Contains("model.layers.0.self_attn.q_proj.bias", keys);
        Assert.Contains("model.layers.0.self_attn.k_proj.bias", keys);
        Assert.Contains("model.layers.0.self_attn.v_proj.bias", keys);
        Assert.DoesNotContain("model.layers.0.self_attn.o_proj.bias", keys);
        Assert.DoesNotContain("lm_head.weight", keys);
        Assert.Equal(new long[] { 2 * 4, 24 }, model.state_dict()["model.layers.0.self_attn.k_proj.weight"].shape);
    }

    [Fact]
    public void Forward_returns_logits_for_every_position_and_is_causal()
    {
        using var model = DecoderLM.CreateRandom(TinyModels.Qwen2(tied: false), seed: 7);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var ids = tensor(new long[] { 5, 9, 1, 30, 7, 2, 11, 3 }).view(2, 4);

        var logits = model.call(ids);
        Assert.Equal(new long[] { 2, 4, 40 }, logits.shape);

        // Changing the last token must not change earlier positions.
        var changed = ids.clone();
        changed[0, 3] = tensor(17L);
        var other = model.call(changed);
        Assert.True(logits.narrow(1, 0, 3).allclose(other.narrow(1, 0, 3), rtol: 1e-5, atol: 1e-6));
        Assert.False(logits.narrow(1, 3, 1).allclose(other.narrow(1, 3, 1)));
    }

    [Fact]
    public void Hidden_states_count_is_layers_plus_one()
    {
        var config = TinyModels.Llama();
        using var model = DecoderLM.CreateRandom(config, seed: 3);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var ids = tensor(new long[] { 4, 8, 15, 16, 23, 42 }).view(1, 6);

        using var output = model.Forward(ids, new DecoderForwardOptions { OutputHiddenStates = true });

        Assert.Equal(config.NumHiddenLayers + 1, output.HiddenStates!.Count);
        Assert.All(output.HiddenStates, h => Assert.Equal(new long[] { 1, 6, config.HiddenSize }, h.shape));
        TensorAssert.Identical(output.HiddenStates[^1], output.LastHiddenState);
        TensorAssert.Identical(model.EmbedTokens.call(ids), output.HiddenStates[0]);
    }

    [Fact]
    public void Left_padding_with_mask_gives_the_same_logits_as_the_unpadded_sequence()
    {
        using var model = DecoderLM.CreateRandom(TinyModels.Llama(), seed: 11);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var plain = tensor(new long[] { 7, 8, 9 }).view(1, 3);
        var padded = tensor(new long[] { 0, 0, 7, 8, 9 }).view(1, 5);
        var mask = tensor(new long[] { 0, 0, 1, 1, 1 }).view(1, 5);

        var expected = model.call(plain);
        var actual = model.forward(padded, mask).narrow(1, 2, 3);

        Assert.True(expected.allclose(actual, rtol: 1e-5, atol: 1e-5));
    }

    [Fact]
    public void Same_seed_gives_same_weights()
    {
        using var a = DecoderLM.CreateRandom(TinyModels.Llama(), seed: 5);
        using var b = DecoderLM.CreateRandom(TinyModels.Llama(), seed: 5);
        using var c = DecoderLM.CreateRandom(TinyModels.Llama(), seed: 6);
        var (sa, sb, sc) = (a.state_dict(), b.state_dict(), c.state_dict());
        Assert.All(sa.Keys, k => TensorAssert.Identical(sa[k], sb[k], k));
        Assert.False(TensorAssert.BitIdentical(sa["model.embed_tokens.weight"], sc["model.embed_tokens.weight"]));
    }

    [Fact]
    public void Bfloat16_model_runs_close_to_its_float32_weights()
    {
        using var model = DecoderLM.CreateRandom(TinyModels.Qwen2(), seed: 13, ScalarType.BFloat16);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var ids = tensor(new long[] { 5, 9, 1, 30, 7, 2 }).view(1, 6);

        var low = model.call(ids);
        model.To(ScalarType.Float32);
        var full = model.call(ids);

        Assert.Equal(ScalarType.BFloat16, low.dtype);
        Assert.True(low.to_type(ScalarType.Float32).allclose(full, rtol: 0.05, atol: 0.05));
    }
}
