using FineTuneService.Datasets.Sft;
using FineTuneService.Datasets;
using FineTuneService.Ml.Training;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Safety.Strategies;

/// <summary>Safety-set helpers shared by the training strategies: a seeded sample choice and the masked next-token loss of one example.</summary>
internal static class SafetyLoss
{
    /// <summary>Up to <paramref name="count"/> examples in a seeded order (the same for the same job seed).</summary>
    public static IReadOnlyList<TokenizedExample> Choose(IReadOnlyList<TokenizedExample> examples, int count, long seed, string purpose)
    {
        var usable = examples.Where(e => e.LossMask.Skip(1).Any(m => m)).ToArray();
        if (usable.Length == 0) throw new InvalidOperationException($"No {purpose} example has an answer token to score.");
        return DataOrder.Permutation(usable.Length, seed, epoch: -1000).Take(count).Select(i => usable[i]).ToArray();
    }

    /// <summary>Mean cross-entropy of the answer tokens of one example (scalar, fp32), with autograd as the caller has it.</summary>
    public static Tensor NextTokenLoss(nn.Module<Tensor, Tensor> model, TokenizedExample example, int maxLength, Device device)
    {
        var row = TrainingRows.ToRow(example, maxLength);
        using var ids = tensor(row.InputIds.Select(i => (long)i).ToArray(), device: device).unsqueeze(0);
        using var labels = tensor(row.Labels.Select(i => (long)i).ToArray(), device: device);
        using var logits = model.call(ids);
        return nn.functional.cross_entropy(logits[0].to_type(ScalarType.Float32), labels, ignore_index: TrainingRow.IgnoreIndex);
    }

    /// <summary>Runs <paramref name="action"/> with the model in eval mode (no dropout), then restores its mode.</summary>
    public static T InEvalMode<T>(nn.Module model, Func<T> action)
    {
        var wasTraining = model.training;
        model.eval();
        try
        {
            return action();
        }
        finally
        {
            if (wasTraining) model.train();
        }
    }
}
