using FineTuneService.Contracts;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Safety.Strategies.FrozenLayers;

/// <summary>
/// Locates the safety layers of an aligned model ("Safety Layers in Aligned LLMs", Li et al. 2024).
/// <list type="number">
/// <item>Curves: per layer, mean cosine similarity of last-prompt-token hidden states over N-N, M-M and N-M pairs, and
/// gap(l) = (N-N + M-M)/2 - N-M.</item>
/// <item>Candidate (the rising edge of the separation): first = first layer with gap ≥ StartFraction · max gap;
/// last = first layer from there with gap ≥ EndFraction · max gap.</item>
/// <item>Refinement by over-rejection: scaling a range's attention and MLP weights by alpha &gt; 1 amplifies the safety
/// layers' refusal feature, so benign prompts get refused. With the first layer fixed, the last layer moves within
/// ±SearchRadius to the value with most refusals; then, with that last layer, the first layer does the same. Ties go
/// to the bound closest to the candidate, then to the narrower range. Ranges stay within layers 1..L-2 (never the
/// embedding-facing or the output-facing layer).</item>
/// </list>
/// Weights are restored bit for bit after every trial.
/// </summary>
public sealed class SafetyLayerLocator(SafetyLayerLocatorParams options)
{
    public SafetyLayerLocatorParams Options { get; } = Validate(options);

    /// <summary>Curves from hidden states shaped [prompts, layers, hidden] for normal and malicious prompts.</summary>
    public static SimilarityCurves Curves(Tensor normalStates, Tensor maliciousStates)
    {
        if (normalStates.dim() != 3 || maliciousStates.dim() != 3 || normalStates.shape[1] != maliciousStates.shape[1])
            throw new ArgumentException("Hidden states must be [prompts, layers, hidden] with the same layer count.");
        if (normalStates.shape[0] < 2 || maliciousStates.shape[0] < 2)
            throw new ArgumentException("At least two normal and two malicious prompts are needed for the N-N and M-M curves.");
        using var scope = NewDisposeScope();
        var n = nn.functional.normalize(normalStates.to_type(ScalarType.Float64), dim: -1).transpose(0, 1); // [L, Pn, H]
        var m = nn.functional.normalize(maliciousStates.to_type(ScalarType.Float64), dim: -1).transpose(0, 1);
        var nn_ = MeanOffDiagonal(n.bmm(n.transpose(1, 2)));
        var mm = MeanOffDiagonal(m.bmm(m.transpose(1, 2)));
        var nm = n.bmm(m.transpose(1, 2)).mean([1, 2]);
        var gap = (nn_ + mm) / 2 - nm;
        return new SimilarityCurves(ToArray(nn_), ToArray(mm), ToArray(nm), ToArray(gap));
    }

    /// <summary>Candidate range from the curves (inclusive), before the over-rejection refinement.</summary>
    public (int First, int Last) CandidateRange(SimilarityCurves curves)
    {
        var gap = curves.Gap;
        var max = gap.Max();
        if (!(max > 0)) throw new InvalidOperationException("Normal and malicious prompts never separate (max N-M gap ≤ 0); the model may not be safety-aligned.");
        var first = Array.FindIndex(gap, g => g >= Options.StartFraction * max);
        var last = Array.FindIndex(gap, first, g => g >= Options.EndFraction * max);
        return (first, last);
    }

    /// <summary>
    /// Curves, candidate and over-rejection refinement. <paramref name="hiddenStates"/> gives the last prompt token's
    /// hidden state after every decoder layer, [layers, hidden]; <paramref name="complete"/> answers a batch of prompts
    /// with the current weights (it is called with the candidate ranges scaled). <paramref name="progress"/> hears the
    /// candidate and each over-rejection trial as they finish.
    /// </summary>
    public SafetyLayerLocation Locate<TPrompt>(
        IReadOnlyList<TPrompt> normalPrompts,
        IReadOnlyList<TPrompt> maliciousPrompts,
        IReadOnlyList<TPrompt> benignPrompts,
        Func<TPrompt, Tensor> hiddenStates,
        IReadOnlyList<(string Name, Parameter Parameter)> parameters,
        Func<IReadOnlyList<TPrompt>, IReadOnlyList<string>> complete,
        Predicate<string> isRefusal,
        Action<string>? progress = null)
    {
        SimilarityCurves curves;
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            curves = Curves(
                stack(normalPrompts.Select(p => hiddenStates(p)).ToArray()),
                stack(maliciousPrompts.Select(p => hiddenStates(p)).ToArray()));
        }
        var candidate = CandidateRange(curves);
        progress?.Invoke($"similarity curves over {curves.Layers} layers: candidate safety layers {candidate.First}..{candidate.Last}");
        int CountRefusals() => complete(benignPrompts).Count(answer => isRefusal(answer));
        var baseline = CountRefusals();
        progress?.Invoke($"{baseline} of {benignPrompts.Count} benign prompts refused with unscaled weights");
        var (first, last, trials) = Refine(candidate, curves.Layers, (f, l) =>
        {
            var refusals = WithScaledLayers(parameters, f, l, Options.ScaleAlpha, CountRefusals);
            progress?.Invoke($"layers {f}..{l} scaled by {Options.ScaleAlpha}: {refusals} of {benignPrompts.Count} benign prompts refused");
            return refusals;
        });
        return new SafetyLayerLocation(first, last, candidate.First, candidate.Last, curves, Options.ScaleAlpha, benignPrompts.Count, baseline, trials);
    }

    /// <summary>The two-stage search (last bound, then first bound) over <paramref name="refusals"/>(first, last).</summary>
    public (int First, int Last, IReadOnlyList<OverRejectionTrial> Trials) Refine((int First, int Last) candidate, int layers, Func<int, int, int> refusals)
    {
        int lo = layers >= 3 ? 1 : 0, hi = layers >= 3 ? layers - 2 : layers - 1;
        var first = Math.Clamp(candidate.First, lo, hi);
        var last = Math.Clamp(candidate.Last, first, hi);
        var trials = new List<OverRejectionTrial>();
        var cache = new Dictionary<(int, int), int>();
        int Evaluate(int f, int l)
        {
            if (!cache.TryGetValue((f, l), out var count))
            {
                count = cache[(f, l)] = refusals(f, l);
                trials.Add(new OverRejectionTrial(f, l, count));
            }
            return count;
        }

        var candidateLast = last;
        last = Enumerable.Range(last - Options.SearchRadius, 2 * Options.SearchRadius + 1)
            .Where(l => l >= first && l <= hi)
            .OrderByDescending(l => Evaluate(first, l)).ThenBy(l => Math.Abs(l - candidateLast)).ThenBy(l => l)
            .First();
        var candidateFirst = first;
        first = Enumerable.Range(first - Options.SearchRadius, 2 * Options.SearchRadius + 1)
            .Where(f => f >= lo && f <= last)
            .OrderByDescending(f => Evaluate(f, last)).ThenBy(f => Math.Abs(f - candidateFirst)).ThenByDescending(f => f)
            .First();
        return (first, last, trials);
    }

    /// <summary>Runs <paramref name="action"/> with the range's attention and MLP weights scaled by alpha, then restores them exactly.</summary>
    public static T WithScaledLayers<T>(IReadOnlyList<(string Name, Parameter Parameter)> parameters, int firstLayer, int lastLayer, double alpha, Func<T> action)
    {
        var scaled = parameters
            .Where(p => LayerParameterNames.LayerIndex(p.Name) is { } layer && layer >= firstLayer && layer <= lastLayer
                        && LayerParameterNames.IsAttentionOrMlp(p.Name) && p.Name.EndsWith(".weight", StringComparison.Ordinal))
            .Select(p => p.Parameter)
            .ToArray();
        var originals = new Tensor[scaled.Length];
        using (no_grad())
        {
            for (var i = 0; i < scaled.Length; i++)
            {
                originals[i] = scaled[i].detach().clone();
                scaled[i].mul_(alpha);
            }
        }
        try
        {
            return action();
        }
        finally
        {
            using (no_grad())
            {
                for (var i = 0; i < scaled.Length; i++)
                {
                    scaled[i].copy_(originals[i]);
                    originals[i].Dispose();
                }
            }
        }
    }

    private static Tensor MeanOffDiagonal(Tensor gram)
    {
        var p = gram.shape[1];
        var offDiagonal = ones(p, p, dtype: ScalarType.Bool, device: gram.device).triu(1);
        return gram.masked_select(offDiagonal.unsqueeze(0).expand(gram.shape)).reshape(gram.shape[0], -1).mean([1]);
    }

    private static double[] ToArray(Tensor t) => t.cpu().data<double>().ToArray();

    private static SafetyLayerLocatorParams Validate(SafetyLayerLocatorParams options) => Checks.Require(options, options.Errors(), "safety layer locator");
}
