using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Tests.Training;

/// <summary>
/// A one-block causal transformer (a few thousand weights) for trainer tests; has dropout so that resume tests
/// also cover the RNG state.
/// </summary>
internal sealed class TinyCausalLm : nn.Module<Tensor, Tensor>
{
    private readonly Embedding embed_tokens;
    private readonly Embedding embed_positions;
    private readonly Linear qkv_proj;
    private readonly Linear o_proj;
    private readonly LayerNorm norm;
    private readonly Linear up_proj;
    private readonly Linear down_proj;
    private readonly Dropout dropout;
    private readonly Linear lm_head;

    public TinyCausalLm(int vocabulary = 32, int width = 16, int maxLength = 64, double dropoutRate = 0.1, long seed = 7)
        : base(nameof(TinyCausalLm))
    {
        torch.manual_seed(seed);
        embed_tokens = nn.Embedding(vocabulary, width);
        embed_positions = nn.Embedding(maxLength, width);
        qkv_proj = nn.Linear(width, 3 * width);
        o_proj = nn.Linear(width, width);
        norm = nn.LayerNorm(width);
        up_proj = nn.Linear(width, 2 * width);
        down_proj = nn.Linear(2 * width, width);
        dropout = nn.Dropout(dropoutRate);
        lm_head = nn.Linear(width, vocabulary);
        RegisterComponents();
    }

    public override Tensor forward(Tensor inputIds)
    {
        using var scope = NewDisposeScope();
        var length = inputIds.shape[1];
        var positions = arange(length, device: inputIds.device);
        var x = embed_tokens.forward(inputIds) + embed_positions.forward(positions);
        var qkv = qkv_proj.forward(x).chunk(3, dim: -1);
        var attention = nn.functional.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_casual: true);
        x = x + dropout.forward(o_proj.forward(attention));
        x = x + down_proj.forward(nn.functional.gelu(up_proj.forward(norm.forward(x))));
        return lm_head.forward(x).MoveToOuterDisposeScope();
    }
}
