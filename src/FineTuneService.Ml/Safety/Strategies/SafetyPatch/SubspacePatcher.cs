using FineTuneService.Contracts;
using FineTuneService.Contracts.Safety;
using FineTuneService.Ml.Safety.Strategies.ProjectedGradients;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Safety.Strategies.SafetyPatch;

/// <summary>What a safety patch did: the patch examples' mean loss before and after, and the steps taken.</summary>
public sealed record SafetyPatchReport(int Steps, double LossBefore, double LossAfter, int Parameters, double MeanRank);

/// <summary>
/// The safety patch: a few plain gradient-descent steps on the refusal loss of a handful of safety examples, each
/// step's gradient first projected, per weight, onto that weight's low-rank safety subspace (the span of the per-sample
/// refusal-loss gradients, <see cref="SafetySubspace"/>, estimated once on the weights before the patch), so the patch
/// moves the weights only in the directions the refusal behaviour lives in. Deterministic from the seed.
/// </summary>
public sealed class SubspacePatcher(SafetyPatchParams options, long seed)
{
    /// <summary>Global norm the projected gradient is clipped to before each step.</summary>
    public const double MaxGradNorm = 1.0;

    public SafetyPatchParams Options { get; } = Checks.Require(options);

    /// <param name="parameters">The weights to patch (the trainable ones), changed in place.</param>
    /// <param name="subspaceLoss">Refusal loss of subspace sample i (0 ≤ i &lt; <paramref name="subspaceSamples"/>).</param>
    /// <param name="patchLoss">Refusal loss of patch example i (0 ≤ i &lt; <paramref name="patchExamples"/>).</param>
    public SafetyPatchReport Patch(
        IReadOnlyList<(string Name, Parameter Parameter)> parameters,
        SafetyLossFunction subspaceLoss, int subspaceSamples,
        SafetyLossFunction patchLoss, int patchExamples)
    {
        var weights = parameters.Select(p => p.Parameter).ToArray();
        var subspaces = Estimate(weights, subspaceLoss, subspaceSamples);
        try
        {
            var before = MeanLoss(patchLoss, patchExamples);
            for (var step = 0; step < Options.Steps; step++) Step(weights, subspaces, patchLoss, patchExamples);
            return new SafetyPatchReport(Options.Steps, before, MeanLoss(patchLoss, patchExamples), weights.Length,
                subspaces.Length == 0 ? 0 : subspaces.Average(s => s.Rank));
        }
        finally
        {
            foreach (var s in subspaces) s.Dispose();
        }
    }

    private SafetySubspace[] Estimate(Parameter[] weights, SafetyLossFunction loss, int samples)
    {
        var perSample = SafetyGradients.PerSample(weights, loss, samples);
        try
        {
            var generator = new Generator((ulong)seed);
            return weights.Select((_, i) => SafetySubspace.Estimate(perSample.Select(s => s[i]).ToArray(), Options.Rank, twoSided: false, generator)).ToArray();
        }
        finally
        {
            foreach (var sample in perSample) foreach (var g in sample) g.Dispose();
        }
    }

    private void Step(Parameter[] weights, SafetySubspace[] subspaces, SafetyLossFunction loss, int examples)
    {
        using var scope = NewDisposeScope();
        var gradients = SafetyGradients.Mean(weights, loss, examples);
        var projected = gradients.Select((g, i) => subspaces[i].Project(g)).ToArray();
        var norm = Math.Sqrt(projected.Sum(p => GradientSurgery.Inner(p, p)));
        var scale = norm > MaxGradNorm ? MaxGradNorm / norm : 1.0;
        using var noGrad = no_grad();
        for (var i = 0; i < weights.Length; i++)
            weights[i].sub_((projected[i] * (Options.LearningRate * scale)).to_type(weights[i].dtype));
    }

    private static double MeanLoss(SafetyLossFunction loss, int examples)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return Enumerable.Range(0, examples).Average(i => loss(i).item<float>());
    }
}
