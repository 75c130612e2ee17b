using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Tests.Safety;

/// <summary>Seeded tiny tensors and Hugging Face-named parameter sets for the safety strategy tests.</summary>
internal static class SafetyTestTensors
{
    public static Generator Seeded(int seed) => new((ulong)seed);

    public static Tensor Randn(Generator g, params long[] shape) => randn(shape, generator: g);

    /// <summary>A decoder-shaped parameter list: embeddings, and per layer attention, MLP and a norm.</summary>
    public static List<(string Name, Parameter Parameter)> DecoderParameters(int layers, int hidden, Generator g, bool lora = false)
    {
        var list = new List<(string, Parameter)> { ("model.embed_tokens.weight", new Parameter(Randn(g, 16, hidden))) };
        for (var i = 0; i < layers; i++)
        {
            foreach (var proj in new[] { "self_attn.q_proj", "self_attn.o_proj", "mlp.up_proj" })
            {
                list.Add(($"model.layers.{i}.{proj}.weight", new Parameter(Randn(g, hidden, hidden), requires_grad: !lora)));
                if (lora)
                {
                    list.Add(($"model.layers.{i}.{proj}.lora_A.weight", new Parameter(Randn(g, 2, hidden))));
                    list.Add(($"model.layers.{i}.{proj}.lora_B.weight", new Parameter(Randn(g, hidden, 2))));
                }
            }
            list.Add(($"model.layers.{i}.self_attn.q_proj.bias", new Parameter(Randn(g, hidden), requires_grad: !lora)));
            list.Add(($"model.layers.{i}.input_layernorm.weight", new Parameter(ones(hidden), requires_grad: !lora)));
        }
        return list;
    }

    public static bool BitEqual(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();
}
