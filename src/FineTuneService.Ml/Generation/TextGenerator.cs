using FineTuneService.Ml.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Generation;

/// <summary>
/// Batched autoregressive decoding with left padding and an optional KV cache. Runs under no_grad in eval mode
/// with one dispose scope per step; the model's training mode is restored afterwards.
/// </summary>
public sealed class TextGenerator(DecoderLM model)
{
    public IReadOnlyList<GeneratedSequence> Generate(IReadOnlyList<IReadOnlyList<int>> prompts, GenerationOptions options)
    {
        options.Validate();
        if (prompts.Count == 0) return [];
        if (prompts.Any(p => p.Count == 0)) throw new ArgumentException("Every prompt needs at least one token.", nameof(prompts));
        var vocabulary = model.Config.VocabSize;
        if (prompts.SelectMany(p => p).Any(id => id < 0 || id >= vocabulary))
            throw new ArgumentException($"Prompt token ids must be in [0, {vocabulary}).", nameof(prompts));

        var stopIds = (options.StopTokenIds ?? model.Config.EosTokenIds).ToHashSet();
        var batch = prompts.Count;
        var promptLength = prompts.Max(p => p.Count);

        // Left-padded token rows and their masks, grown by one column per step.
        var tokens = prompts.Select(p => Enumerable.Repeat(options.PadTokenId, promptLength - p.Count).Concat(p).ToList()).ToArray();
        var masks = prompts.Select(p => Enumerable.Repeat(false, promptLength - p.Count).Concat(Enumerable.Repeat(true, p.Count)).ToList()).ToArray();
        var generated = Enumerable.Range(0, batch).Select(_ => new List<int>()).ToArray();
        var finished = new FinishReason?[batch];

        var wasTraining = model.training;
        model.eval();
        using var noGrad = no_grad();
        using var sampler = new Generator((ulong)options.Seed, model.Device);
        using var cache = options.UseKvCache && options.MaxNewTokens > 0
            ? new KvCache(model.Config, batch, promptLength + options.MaxNewTokens, model.DType, model.Device)
            : null;
        try
        {
            for (var step = 0; step < options.MaxNewTokens && finished.Any(f => f is null); step++)
            {
                using var scope = NewDisposeScope();
                var offset = cache?.Length ?? 0;
                var inputIds = ToTensor(tokens, offset);
                var attentionMask = ToMask(masks);
                using var output = model.Forward(inputIds, new DecoderForwardOptions
                {
                    AttentionMask = attentionMask,
                    Cache = cache,
                    Logits = LogitsMode.LastPosition,
                });
                var next = TokenSampler.Next(output.Logits!.select(1, 0), options.Temperature, options.TopP, options.TopK, sampler).cpu().data<long>().ToArray();

                for (var row = 0; row < batch; row++)
                {
                    var token = (int)next[row];
                    if (finished[row] is null)
                    {
                        if (stopIds.Contains(token)) finished[row] = FinishReason.Stop;
                        else generated[row].Add(token);
                    }
                    // Finished rows keep decoding padding so the batch stays rectangular; their output is frozen.
                    var keep = finished[row] is null;
                    tokens[row].Add(keep ? token : options.PadTokenId);
                    masks[row].Add(keep);
                }
            }
        }
        finally
        {
            model.train(wasTraining);
        }
        return generated.Select((ids, row) => new GeneratedSequence(ids.ToArray(), finished[row] ?? FinishReason.Length)).ToList();
    }

    private Tensor ToTensor(IReadOnlyList<List<int>> rows, int fromColumn)
    {
        var width = rows[0].Count - fromColumn;
        var flat = new long[rows.Count * width];
        for (var row = 0; row < rows.Count; row++)
        for (var column = 0; column < width; column++)
            flat[row * width + column] = rows[row][fromColumn + column];
        return tensor(flat, [rows.Count, width], ScalarType.Int64, model.Device);
    }

    private Tensor ToMask(IReadOnlyList<List<bool>> rows) =>
        tensor(rows.SelectMany(r => r).ToArray(), [rows.Count, rows[0].Count], ScalarType.Bool, model.Device);
}
