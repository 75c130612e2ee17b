using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Evaluation.Classifier;

/// <summary>
/// fastText-style classifier: hashed sparse features are summed (weighted) into a small hidden vector, then a ReLU
/// and a linear layer give the harm logit. Field names are the checkpoint keys.
/// </summary>
internal sealed class HarmClassifierModule : nn.Module<Tensor, Tensor, Tensor, Tensor>
{
    private readonly EmbeddingBag features;
    private readonly Parameter hidden_bias;
    private readonly Linear output;

    public HarmClassifierModule(int buckets, int hidden) : base(nameof(HarmClassifierModule))
    {
        features = nn.EmbeddingBag(buckets, hidden, mode: EmbeddingBagMode.Sum);
        hidden_bias = nn.Parameter(zeros(hidden));
        output = nn.Linear(hidden, 1);
        RegisterComponents();
    }

    /// <summary>Logits [batch] for bags given by flat bucket ids, bag start offsets and per-id weights.</summary>
    public override Tensor forward(Tensor buckets, Tensor offsets, Tensor weights)
    {
        using var summed = features.forward(buckets, offsets, weights);
        using var hidden = nn.functional.relu(summed + hidden_bias);
        using var logits = output.forward(hidden);
        return logits.squeeze(-1);
    }

    /// <summary>Packs sparse feature rows into the flat tensors <see cref="forward"/> takes.</summary>
    public static (Tensor Buckets, Tensor Offsets, Tensor Weights) Pack(IReadOnlyList<SparseFeatures> rows)
    {
        var total = rows.Sum(r => r.Buckets.Length);
        var buckets = new long[total];
        var weights = new float[total];
        var offsets = new long[rows.Count];
        var position = 0;
        for (var i = 0; i < rows.Count; i++)
        {
            offsets[i] = position;
            rows[i].Buckets.CopyTo(buckets, position);
            rows[i].Weights.CopyTo(weights, position);
            position += rows[i].Buckets.Length;
        }
        return (tensor(buckets), tensor(offsets), tensor(weights));
    }
}
