using FineTuneService.Datasets.Sft;
using FineTuneService.Contracts;
using FineTuneService.Contracts.Safety.Hardening;
using FineTuneService.Datasets;
using FineTuneService.Ml.Models;
using FineTuneService.Ml.Safety.Strategies;
using FineTuneService.Ml.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Safety.Hardening;

/// <summary>
/// Booster (see <see cref="BoosterParams"/>): each step takes a batch of alignment and of harmful pairs and forms
/// g = ∇f(w) + λ (∇h(w) − ∇h(w̃)), w̃ = w − α ∇h(w) / ‖∇h(w)‖, the first-order gradient of the objective as the
/// paper's code computes it (∇h at the perturbed point is not differentiated through the perturbation); AdamW then
/// steps on g. Deterministic from the seed: batches are drawn in a seeded order.
/// </summary>
public sealed class BoosterHardener(BoosterParams options, long seed = 1) : IBaseModelHardener
{
    public const string Name = "booster";

    private readonly BoosterParams _options = Checks.Require(options, options.Errors().Select(e => e.Message), "booster parameters");

    public string Method => Name;

    /// <summary>
    /// The alignment refusals in the base's own form (or as shipped), and, with a benign share, as many benign pairs
    /// answered by the base as the steps will draw (the base's non-refusals only; at most the shipped candidates).
    /// </summary>
    public HardeningSets TrainingSets(HardeningSets shipped, BaseModelAnswers baseAnswers, CancellationToken cancellationToken = default)
    {
        var safety = _options.AlignmentAnswers == BoosterParams.BaseAnswers
            ? shipped.Safety with { Refusals = baseAnswers.Refusals(shipped.Safety.Refusals, cancellationToken) }
            : shipped.Safety;
        var benignDrawn = (long)_options.Steps * _options.BenignPairsPerBatch;
        var benign = benignDrawn == 0 ? [] : baseAnswers.NonRefusals(shipped.Benign.Take((int)Math.Min(benignDrawn, shipped.Benign.Count)).ToList(), cancellationToken);
        return new HardeningSets(safety, benign);
    }

    public HardeningReport Harden(DecoderLM model, HardeningData data, CancellationToken cancellationToken = default,
        Action<HardeningStep>? onStep = null)
    {
        if (data.Alignment.Count == 0 || data.Harmful.Count == 0)
            throw new ArgumentException("Booster needs alignment (refusal) and harmful pairs.", nameof(data));
        if (_options.BenignPairsPerBatch > 0 && data.BenignPairs.Count == 0)
            throw new ArgumentException($"benign_share {_options.BenignShare} needs benign pairs; none is left (the base's answers to the benign prompts were refusals, "
                                        + "empty, or left no answer token within the sequence length). Set benign_share to 0 to align on refusals only.", nameof(data));
        var device = model.parameters().First().device;
        var parameters = model.parameters().Where(p => p.requires_grad).ToArray();
        using var optimizer = new AdamW(parameters, _options.LearningRate, weight_decay: 0);
        var alignment = new AlignmentBatches(data, _options, seed);
        var harmful = new BatchCycle(data.Harmful, _options.BatchSize, seed + 1);
        double firstAlignment = double.NaN, lastAlignment = double.NaN, firstDrop = double.NaN, lastDrop = double.NaN;
        var wasTraining = model.training;
        model.eval(); // no dropout: the perturbed and the unperturbed passes must see the same function
        try
        {
            for (var step = 0; step < _options.Steps; step++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                var harmfulBatch = harmful.Next();
                var alignmentBatch = alignment.Next();
                Tensor Loss(IReadOnlyList<TokenizedExample> batch) =>
                    stack(batch.Select(e => SafetyLoss.NextTokenLoss(model, e, data.MaxSequenceLength, device)).ToArray()).mean();

                var (harmfulGrad, harmfulLoss) = Gradients(parameters, () => Loss(harmfulBatch));
                var norm = Math.Sqrt(harmfulGrad.Sum(g => g.pow(2).sum().item<float>())) + 1e-7;
                Shift(parameters, harmfulGrad, -_options.Alpha / norm);
                var (perturbedGrad, perturbedLoss) = Gradients(parameters, () => Loss(harmfulBatch));
                Shift(parameters, harmfulGrad, _options.Alpha / norm);
                var (alignmentGrad, alignmentLoss) = Gradients(parameters, () => Loss(alignmentBatch));

                using (no_grad())
                    for (var i = 0; i < parameters.Length; i++)
                        parameters[i].grad = alignmentGrad[i] + (harmfulGrad[i] - perturbedGrad[i]) * _options.Lambda;
                optimizer.step();
                optimizer.zero_grad();

                var drop = harmfulLoss - perturbedLoss;
                if (step == 0) (firstAlignment, firstDrop) = (alignmentLoss, drop);
                (lastAlignment, lastDrop) = (alignmentLoss, drop);
                onStep?.Invoke(new HardeningStep(step + 1, _options.Steps, alignmentLoss, drop));
            }
        }
        finally
        {
            foreach (var p in parameters) p.grad = null;
            if (wasTraining) model.train();
        }
        return new HardeningReport(Name, _options.Steps, firstAlignment, lastAlignment, firstDrop, lastDrop);
    }

    /// <summary>The loss's value and its gradient per parameter, without touching <c>.grad</c>.</summary>
    private static (Tensor[] Gradients, double Loss) Gradients(Parameter[] parameters, Func<Tensor> loss)
    {
        using var enable = enable_grad();
        var value = loss();
        var grads = autograd.grad([value], parameters.Cast<Tensor>().ToList(), allow_unused: true);
        var result = parameters.Select((p, i) => grads[i] is { IsInvalid: false } g ? g.detach() : zeros_like(p)).ToArray();
        return (result, value.item<float>());
    }

    private static void Shift(Parameter[] parameters, Tensor[] direction, double scale)
    {
        using var noGrad = no_grad();
        for (var i = 0; i < parameters.Length; i++) parameters[i].add_(direction[i], alpha: scale);
    }

    /// <summary>
    /// The alignment batches f is computed on: <see cref="BoosterParams.BenignPairsPerBatch"/> benign pairs and the
    /// rest refusals, each set drawn in its own seeded order. Without a benign share they are the refusal batches
    /// alone, the same ones as before benign pairs existed.
    /// </summary>
    internal sealed class AlignmentBatches(HardeningData data, BoosterParams options, long seed)
    {
        private readonly BatchCycle _refusals = new(data.Alignment, options.BatchSize - options.BenignPairsPerBatch, seed);
        private readonly BatchCycle? _benign = options.BenignPairsPerBatch > 0 ? new(data.BenignPairs, options.BenignPairsPerBatch, seed + 2) : null;

        public IReadOnlyList<TokenizedExample> Next() => _benign is null ? _refusals.Next() : [.. _refusals.Next(), .. _benign.Next()];
    }

    /// <summary>Batches of a set in a seeded order, reshuffled each pass.</summary>
    private sealed class BatchCycle(IReadOnlyList<TokenizedExample> examples, int batchSize, long seed)
    {
        private int _epoch;
        private int _position;
        private int[] _order = DataOrder.Permutation(examples.Count, seed, 0);

        public IReadOnlyList<TokenizedExample> Next()
        {
            var batch = new List<TokenizedExample>(batchSize);
            while (batch.Count < Math.Min(batchSize, examples.Count))
            {
                if (_position == _order.Length) (_order, _position) = (DataOrder.Permutation(examples.Count, seed, ++_epoch), 0);
                batch.Add(examples[_order[_position++]]);
            }
            return batch;
        }
    }
}
