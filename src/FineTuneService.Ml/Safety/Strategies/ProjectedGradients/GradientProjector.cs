using FineTuneService.Contracts;
using FineTuneService.Contracts.Safety;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Safety.Strategies.ProjectedGradients;

/// <summary>Scalar safety loss (e.g. refusal-completion cross-entropy) of safety sample <c>i</c>, with autograd on.</summary>
public delegate Tensor SafetyLossFunction(int sampleIndex);

/// <summary>What one gradient edit did: how many parameters conflicted with the safety gradient and were edited.</summary>
public sealed record GradientEditReport(int Step, bool Refreshed, int Parameters, int Conflicting);

/// <summary>
/// The projected-gradients algorithm: between backward and the optimizer step, edits every trainable gradient that conflicts
/// with its safety gradient (per parameter tensor, so the guarantee holds per matrix and hence for the whole update).
/// Safety gradients come from <see cref="ProjectedGradientsParams.SafetySamples"/> per-sample safety losses and are
/// re-estimated every <see cref="ProjectedGradientsParams.RefreshEvery"/> steps; they are taken with
/// <c>autograd.grad</c>, so the task gradients in <c>.grad</c> are never disturbed. Deterministic from the seed.
/// </summary>
public sealed class GradientProjector(ProjectedGradientsParams options, long seed) : IDisposable
{
    private readonly Dictionary<string, SafetySubspace> _subspaces = new(StringComparer.Ordinal);
    private int _refreshes;

    public ProjectedGradientsParams Options { get; } = Checks.Require(options);

    /// <summary>Current per-parameter safety statistics, by parameter name.</summary>
    public IReadOnlyDictionary<string, SafetySubspace> Subspaces => _subspaces;

    /// <summary>
    /// Edits <c>.grad</c> of <paramref name="parameters"/> in place (call after backward, before the optimizer step).
    /// Re-estimates the safety gradients first when <paramref name="step"/> is a multiple of RefreshEvery or none exist.
    /// </summary>
    public GradientEditReport OnGradients(int step, IReadOnlyList<(string Name, Parameter Parameter)> parameters, SafetyLossFunction safetyLoss)
    {
        var refresh = _subspaces.Count == 0 || step % Options.RefreshEvery == 0;
        if (refresh) Refresh(parameters, safetyLoss);

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var items = parameters
            .Select(p => (Grad: p.Parameter.grad, Subspace: _subspaces.GetValueOrDefault(p.Name)))
            .Where(i => i.Grad is not null && i.Subspace is not null)
            .Select(i => (Grad: i.Grad!, Subspace: i.Subspace!))
            .ToArray();
        if (items.Length == 0) return new GradientEditReport(step, refresh, 0, 0);

        // All inner products (and, for ConFIG, gradient norms) in one device round trip instead of one per tensor.
        var config = Options.Variant == ProjectedGradientsVariants.Config;
        var scalars = stack(items.SelectMany(i =>
            {
                var g = i.Grad.flatten().to_type(ScalarType.Float32);
                return config ? new[] { g.dot(i.Subspace.SafetyGradient.flatten()), g.dot(g) } : [g.dot(i.Subspace.SafetyGradient.flatten())];
            }).ToArray()).to_type(ScalarType.Float64).cpu().data<double>().ToArray();

        var edited = 0;
        for (var k = 0; k < items.Length; k++)
        {
            var (grad, subspace) = items[k];
            var dot = scalars[config ? 2 * k : k];
            if (dot >= 0) continue;
            _ = Options.Variant switch
            {
                ProjectedGradientsVariants.PcGrad => GradientSurgery.PcGradInPlace(grad, subspace.SafetyGradient, dot, subspace.SafetyNorm2),
                ProjectedGradientsVariants.Config => GradientSurgery.ConfigInPlace(grad, subspace.SafetyGradient, dot, Math.Sqrt(scalars[2 * k + 1]), Math.Sqrt(subspace.SafetyNorm2)),
                _ => GradientSurgery.RemoveSubspaceComponentInPlace(grad, subspace.Left, subspace.Right),
            };
            edited++;
        }
        return new GradientEditReport(step, refresh, items.Length, edited);
    }

    /// <summary>Re-estimates the safety gradients (and, for <c>subspace</c>, the bases) of all trainable parameters.</summary>
    public void Refresh(IReadOnlyList<(string Name, Parameter Parameter)> parameters, SafetyLossFunction safetyLoss)
    {
        var trainable = parameters.Where(p => p.Parameter.requires_grad).ToArray();
        var tensors = trainable.Select(p => p.Parameter).ToArray();
        ClearSubspaces();
        if (Options.Variant != ProjectedGradientsVariants.Subspace)
        {
            // PCGrad and ConFIG need only the mean safety gradient: one backward through the summed loss.
            var mean = SafetyGradients.Mean(tensors, safetyLoss, Options.SafetySamples);
            for (var i = 0; i < trainable.Length; i++)
            {
                _subspaces[trainable[i].Name] = SafetySubspace.MeanOnly(mean[i]);
                mean[i].Dispose();
            }
            return;
        }

        var perSample = SafetyGradients.PerSample(tensors, safetyLoss, Options.SafetySamples);
        try
        {
            var generator = new Generator((ulong)(seed + 7919L * _refreshes++));
            for (var i = 0; i < trainable.Length; i++)
                _subspaces[trainable[i].Name] = SafetySubspace.Estimate(perSample.Select(sample => sample[i]).ToArray(), Options.Rank, Options.TwoSided, generator);
        }
        finally
        {
            foreach (var sample in perSample) foreach (var g in sample) g.Dispose();
        }
    }

    public void Dispose() => ClearSubspaces();

    private void ClearSubspaces()
    {
        foreach (var subspace in _subspaces.Values) subspace.Dispose();
        _subspaces.Clear();
    }
}

/// <summary>Per-sample gradients of a safety loss, without touching the parameters' <c>.grad</c>.</summary>
public static class SafetyGradients
{
    /// <summary>Returns, per sample, one detached gradient per parameter (zeros where the loss does not reach it).</summary>
    public static IReadOnlyList<Tensor[]> PerSample(IReadOnlyList<Parameter> parameters, SafetyLossFunction safetyLoss, int samples) =>
        Enumerable.Range(0, samples).Select(i => Gradients(parameters, () => safetyLoss(i))).ToArray();

    /// <summary>Gradient of the mean safety loss over the samples, one backward pass.</summary>
    public static Tensor[] Mean(IReadOnlyList<Parameter> parameters, SafetyLossFunction safetyLoss, int samples) =>
        Gradients(parameters, () => stack(Enumerable.Range(0, samples).Select(i => safetyLoss(i)).ToArray()).mean());

    private static Tensor[] Gradients(IReadOnlyList<Parameter> parameters, Func<Tensor> loss)
    {
        using var scope = NewDisposeScope();
        using var enable = enable_grad();
        var grads = autograd.grad([loss()], parameters.Cast<Tensor>().ToList(), allow_unused: true);
        var detached = new Tensor[parameters.Count];
        for (var j = 0; j < parameters.Count; j++)
        {
            var g = grads[j];
            detached[j] = (g is null || g.IsInvalid ? zeros_like(parameters[j]) : g.detach().clone()).MoveToOuterDisposeScope();
        }
        return detached;
    }
}
