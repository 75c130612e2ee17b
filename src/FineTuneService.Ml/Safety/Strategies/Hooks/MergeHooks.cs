using FineTuneService.Datasets;
using FineTuneService.Ml.Safety.Strategies.Merge;
using FineTuneService.Ml.Safety.Strategies.ProjectedGradients;
using FineTuneService.Ml.Training;
using Microsoft.Extensions.Logging;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Safety.Strategies.Hooks;

/// <summary>
/// <c>merge</c> in the trainer: after training, theta = (1 - lambda) theta_base + lambda theta_ft. LoRA: lora_B scaled by
/// lambda (exact). Full fine-tune: the trainable weights are snapshotted before training and interpolated after.
/// </summary>
public sealed class MergeHook(MergeParams options) : ITrainingStrategy, IDisposable
{
    private Dictionary<string, Tensor>? _baseWeights;

    public IReadOnlyList<string> Merged { get; private set; } = [];

    public string PostTrainingStep => SafetyStrategyNames.Merge;

    public void BeforeTraining(TrainingContext context)
    {
        Dispose();
        _baseWeights = BaseSnapshot.OfFullFineTune(context.Model);
    }

    public void AfterTraining(TrainingContext context)
    {
        var trainable = context.TrainableParameters.Select(p => (p.Name, p.Parameter)).ToArray();
        Merged = _baseWeights is null
            ? WeightMerge.ScaleLoraUpdates(trainable, options.Lambda)
            : WeightMerge.MergeInPlace(trainable, _baseWeights, options.Lambda);
        context.Logger.LogInformation("merge: interpolated {Count} tensors with lambda {Lambda}", Merged.Count, options.Lambda);
        Dispose();
    }

    public void Dispose()
    {
        BaseSnapshot.Dispose(_baseWeights);
        _baseWeights = null;
    }
}

/// <summary>
/// <c>safemerge</c> in the trainer: before training, estimates each adapted weight's safety subspace from the base
/// model's safety-loss gradients (harmful prompts with refusals); after training, merges the layers whose update lies
/// in it (<see cref="SafeMergeStrategy"/>). LoRA: gradients w.r.t. the frozen base weights of the adapted projections.
/// </summary>
public sealed class SafeMergeHook(SafeMergeParams options, IReadOnlyList<TokenizedExample> safetyExamples) : ITrainingStrategy, IDisposable
{
    private readonly SafeMergeStrategy _safeMerge = new(options);
    private Dictionary<string, Tensor>? _baseWeights;
    private Dictionary<string, SafetySubspace> _subspaces = [];

    public IReadOnlyList<SafeMergeDecision> Decisions { get; private set; } = [];

    public string PostTrainingStep => SafetyStrategyNames.SafeMerge;

    public void BeforeTraining(TrainingContext context)
    {
        Dispose();
        var model = context.Model;
        var named = model.named_parameters().ToArray();
        var loraModules = named.Where(p => p.parameter.requires_grad && LayerParameterNames.IsLoraFactor(p.name))
            .Select(p => LayerParameterNames.AdaptedModuleOf(p.name)).ToHashSet(StringComparer.Ordinal);
        var lora = loraModules.Count > 0;
        var weights = named.Where(p => p.parameter.dim() == 2 && LayerParameterNames.LayerIndex(p.name) is not null
                && (lora ? loraModules.Contains(LayerParameterNames.ModuleOf(p.name)) && !LayerParameterNames.IsLoraFactor(p.name) : p.parameter.requires_grad))
            .ToArray();
        if (!lora) _baseWeights = BaseSnapshot.OfFullFineTune(model);

        var samples = SafetyLoss.Choose(safetyExamples, options.SafetySamples, context.Options.Seed, "safety");
        var wasTrainable = weights.Select(w => w.parameter.requires_grad).ToArray();
        foreach (var w in weights) w.parameter.requires_grad = true;
        try
        {
            var perSample = SafetyLoss.InEvalMode(model, () => SafetyGradients.PerSample(weights.Select(w => w.parameter).ToArray(),
                i => SafetyLoss.NextTokenLoss(model, samples[i], context.Options.MaxSequenceLength, context.Device), samples.Count));
            var generator = new Generator((ulong)context.Options.Seed);
            for (var i = 0; i < weights.Length; i++)
                _subspaces[weights[i].name] = SafetySubspace.Estimate(perSample.Select(s => s[i]).ToArray(), options.Rank, twoSided: false, generator);
            foreach (var sample in perSample) foreach (var g in sample) g.Dispose();
        }
        finally
        {
            for (var i = 0; i < weights.Length; i++) weights[i].parameter.requires_grad = wasTrainable[i];
        }
    }

    public void AfterTraining(TrainingContext context)
    {
        var trainable = context.TrainableParameters.Select(p => (p.Name, p.Parameter)).ToArray();
        Decisions = _baseWeights is null
            ? _safeMerge.MergeLora(trainable, _subspaces)
            : _safeMerge.MergeFullFineTune(trainable, _baseWeights, _subspaces);
        context.Logger.LogInformation("safemerge: merged {Merged}/{Total} layers (threshold {Threshold}, lambda {Lambda})",
            Decisions.Count(d => d.Merged), Decisions.Count, options.Threshold, options.Lambda);
        Dispose();
    }

    public void Dispose()
    {
        BaseSnapshot.Dispose(_baseWeights);
        _baseWeights = null;
        foreach (var s in _subspaces.Values) s.Dispose();
        _subspaces = [];
    }
}

internal static class BaseSnapshot
{
    /// <summary>Copies of the trainable weights for a full fine-tune, or null when LoRA factors are what trains.</summary>
    public static Dictionary<string, Tensor>? OfFullFineTune(nn.Module model)
    {
        var trainable = model.named_parameters().Where(p => p.parameter.requires_grad).ToArray();
        if (trainable.Any(p => LayerParameterNames.IsLoraFactor(p.name))) return null;
        return trainable.ToDictionary(p => p.name, p => p.parameter.detach().clone().DetachFromDisposeScope(), StringComparer.Ordinal);
    }

    public static void Dispose(Dictionary<string, Tensor>? weights)
    {
        if (weights is null) return;
        foreach (var w in weights.Values) w.Dispose();
    }
}
