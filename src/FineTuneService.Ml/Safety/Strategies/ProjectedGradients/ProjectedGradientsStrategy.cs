using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Safety.Strategies.ProjectedGradients;

/// <summary>Scalar safety loss (e.g. refusal-completion cross-entropy) of safety sample <c>i</c>, with autograd on.</summary>
public delegate Tensor SafetyLossFunction(int sampleIndex);

/// <summary>What one gradient edit did: how many parameters conflicted with the safety gradient and were edited.</summary>
public sealed record GradientEditReport(int Step, bool Refreshed, int Parameters, int Conflicting);

/// <summary>
/// <c>projected_gradients</c>: between backward and the optimizer step, edits every trainable gradient that conflicts
/// with its safety gradient (per parameter tensor, so the guarantee holds per matrix and hence for the whole update).
/// Safety gradients come from <see cref="ProjectedGradientsParams.SafetySamples"/> per-sample safety losses and are
/// re-estimated every <see cref="ProjectedGradientsParams.RefreshEvery"/> steps; they are taken with
/// <c>autograd.grad</c>, so the task gradients in <c>.grad</c> are never disturbed. Deterministic from the seed.
/// </summary>
public sealed class ProjectedGradientsStrategy(ProjectedGradientsParams options, long seed) : IDisposable
{
    private readonly Dictionary<string, SafetySubspace> _subspaces = new(StringComparer.Ordinal);
    private int _refreshes;

    public ProjectedGradientsParams Options { get; } = Validate(options);

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

        var edited = 0;
        var considered = 0;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        foreach (var (name, parameter) in parameters)
        {
            var grad = parameter.grad;
            if (grad is null || !_subspaces.TryGetValue(name, out var subspace)) continue;
            considered++;
            if (GradientSurgery.Inner(grad, subspace.SafetyGradient) >= 0) continue;
            var update = Options.Variant switch
            {
                ProjectedGradientsVariants.PcGrad => GradientSurgery.PcGrad(grad, subspace.SafetyGradient),
                ProjectedGradientsVariants.Config => GradientSurgery.Config(grad, subspace.SafetyGradient),
                _ => subspace.ProjectConflicting(grad),
            };
            grad.copy_(update);
            edited++;
        }
        return new GradientEditReport(step, refresh, considered, edited);
    }

    /// <summary>Re-estimates the safety gradients (and, for <c>subspace</c>, the bases) of all trainable parameters.</summary>
    public void Refresh(IReadOnlyList<(string Name, Parameter Parameter)> parameters, SafetyLossFunction safetyLoss)
    {
        var trainable = parameters.Where(p => p.Parameter.requires_grad).ToArray();
        var perSample = SafetyGradients.PerSample(trainable.Select(p => p.Parameter).ToArray(), safetyLoss, Options.SafetySamples);
        try
        {
            ClearSubspaces();
            var generator = new Generator((ulong)(seed + 7919L * _refreshes++));
            // PCGrad and ConFIG only need the mean safety gradient, so a rank-1 basis is enough to carry it.
            var rank = Options.Variant == ProjectedGradientsVariants.Subspace ? Options.Rank : 1;
            for (var i = 0; i < trainable.Length; i++)
                _subspaces[trainable[i].Name] = SafetySubspace.Estimate(perSample.Select(sample => sample[i]).ToArray(), rank, Options.TwoSided, generator);
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

    private static ProjectedGradientsParams Validate(ProjectedGradientsParams options) => SafetyParams.Require(options, options.Errors(), SafetyStrategyNames.ProjectedGradients);
}

/// <summary>Per-sample gradients of a safety loss, without touching the parameters' <c>.grad</c>.</summary>
public static class SafetyGradients
{
    /// <summary>Returns, per sample, one detached gradient per parameter (zeros where the loss does not reach it).</summary>
    public static IReadOnlyList<Tensor[]> PerSample(IReadOnlyList<Parameter> parameters, SafetyLossFunction safetyLoss, int samples)
    {
        var result = new List<Tensor[]>(samples);
        for (var i = 0; i < samples; i++)
        {
            using var scope = NewDisposeScope();
            using var enable = enable_grad();
            var loss = safetyLoss(i);
            var grads = autograd.grad([loss], parameters.Cast<Tensor>().ToList(), allow_unused: true);
            var detached = new Tensor[parameters.Count];
            for (var j = 0; j < parameters.Count; j++)
            {
                var g = grads[j];
                detached[j] = (g is null || g.IsInvalid ? zeros_like(parameters[j]) : g.detach().clone()).MoveToOuterDisposeScope();
            }
            result.Add(detached);
        }
        return result;
    }
}
