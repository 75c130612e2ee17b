using FineTuneService.Ml.Models;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Tests.Models;

/// <summary>
/// Checks the decoder against a deliberately naive float64 implementation of the Llama/Qwen2 equations
/// (per-head loops, explicit causal softmax, explicit rotary rotation) built from the checkpoint tensors.
/// </summary>
public sealed class ReferenceImplementationTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Logits_match_a_naive_reference(bool qwen2)
    {
        var config = qwen2 ? TinyModels.Qwen2(tied: true) : TinyModels.Llama(tied: false);
        using var model = DecoderLM.CreateRandom(config, seed: 99);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        if (qwen2)
        {
            // Random init leaves biases at zero; make them matter.
            using var generator = new Generator(5);
            foreach (var (name, parameter) in model.named_parameters().Where(p => p.name.EndsWith(".bias", StringComparison.Ordinal)))
                parameter.normal_(0, 0.5, generator);
        }
        long[] tokens = [4, 17, 9, 33, 1, 26, 12];
        var ids = tensor(tokens).view(1, -1);

        var actual = model.call(ids)[0].to_type(ScalarType.Float64);
        var expected = Reference(config, model.state_dict().ToDictionary(p => p.Key, p => p.Value.to_type(ScalarType.Float64)), tokens);

        Assert.True(expected.allclose(actual, rtol: 1e-4, atol: 1e-4), $"max difference {(expected - actual).abs().max().item<double>()}");
    }

    private static Tensor Reference(DecoderConfig config, Dictionary<string, Tensor> w, long[] tokens)
    {
        int length = tokens.Length, heads = config.NumAttentionHeads, kvHeads = config.KeyValueHeads, d = config.HeadDim;
        Tensor Norm(Tensor x, string key) => x / (x.pow(2).mean([-1], keepdim: true) + config.RmsNormEps).sqrt() * w[key];
        Tensor Linear(Tensor x, string key) => x.matmul(w[key + ".weight"].t()) + (w.TryGetValue(key + ".bias", out var b) ? b : zeros(1, ScalarType.Float64));
        Tensor Rotate(Tensor x /* [T, D] */)
        {
            var rows = new List<Tensor>();
            for (var p = 0; p < length; p++)
            {
                var first = new double[d / 2];
                var second = new double[d / 2];
                for (var i = 0; i < d / 2; i++)
                {
                    var angle = p * Math.Pow(config.RopeTheta, -2.0 * i / d);
                    double x1 = x[p, i].item<double>(), x2 = x[p, i + d / 2].item<double>();
                    first[i] = x1 * Math.Cos(angle) - x2 * Math.Sin(angle);
                    second[i] = x2 * Math.Cos(angle) + x1 * Math.Sin(angle);
                }
                rows.Add(tensor(first.Concat(second).ToArray()));
            }
            return stack(rows);
        }

        var hidden = w["model.embed_tokens.weight"].index_select(0, tensor(tokens));
        for (var layer = 0; layer < config.NumHiddenLayers; layer++)
        {
            var prefix = $"model.layers.{layer}.";
            var h = Norm(hidden, prefix + "input_layernorm.weight");
            var q = Linear(h, prefix + "self_attn.q_proj");
            var k = Linear(h, prefix + "self_attn.k_proj");
            var v = Linear(h, prefix + "self_attn.v_proj");
            var headOutputs = new List<Tensor>();
            for (var head = 0; head < heads; head++)
            {
                var kvHead = head / (heads / kvHeads);
                var qh = Rotate(q.narrow(1, head * d, d));
                var kh = Rotate(k.narrow(1, kvHead * d, d));
                var vh = v.narrow(1, kvHead * d, d);
                var scores = qh.matmul(kh.t()) / Math.Sqrt(d);
                var future = ones(length, length).triu(1).to_type(ScalarType.Bool);
                headOutputs.Add(scores.masked_fill(future, double.NegativeInfinity).softmax(-1).matmul(vh));
            }
            hidden = hidden + Linear(cat(headOutputs, 1), prefix + "self_attn.o_proj");
            var h2 = Norm(hidden, prefix + "post_attention_layernorm.weight");
            var gate = Linear(h2, prefix + "mlp.gate_proj");
            hidden = hidden + Linear(gate * gate.sigmoid() * Linear(h2, prefix + "mlp.up_proj"), prefix + "mlp.down_proj");
        }
        hidden = Norm(hidden, "model.norm.weight");
        var head_ = w.TryGetValue("lm_head.weight", out var lmHead) ? lmHead : w["model.embed_tokens.weight"];
        return hidden.matmul(head_.t());
    }
}
