using FineTuneService.Contracts.Safety;
using FineTuneService.Datasets;
using FineTuneService.Ml.Safety.Strategies.ProjectedGradients;
using FineTuneService.Ml.Training;
using Microsoft.Extensions.Logging;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Safety.Strategies.Merge;

/// <summary>
/// <c>safemerge</c> in the trainer: before training, estimates each adapted weight's safety subspace from the base
/// model's safety-loss gradients (harmful prompts with refusals); after training, merges the layers whose update lies
/// in it (<see cref="SelectiveLayerMerger"/>). LoRA: gradients w.r.t. the frozen base weights of the adapted projections.
/// </summary>
public sealed class SafeMergeTrainingStrategy(SafeMergeParams options, IReadOnlyList<TokenizedExample> safetyExamples)
    : ISafetyTrainingStrategy<SafeMergeParams>, IDisposable
{
    private static readonly string Name = SafetyStrategies.Registry.For<SafeMergeParams>().Name;

    public static ITrainingStrategy Create(SafeMergeParams parameters, EncodedSafetyData data) =>
        new SafeMergeTrainingStrategy(parameters, data.RequireRefusals(Name));

    private readonly SelectiveLayerMerger _merger = new(options);
    private Dictionary<string, Tensor>? _baseWeights;
    private Dictionary<string, SafetySubspace> _subspaces = [];

    public IReadOnlyList<SafeMergeDecision> Decisions { get; private set; } = [];

    public string PostTrainingStep => Name;

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
            ? _merger.MergeLora(trainable, _subspaces)
            : _merger.MergeFullFineTune(trainable, _baseWeights, _subspaces);
        context.Logger.LogInformation("{Strategy}: merged {Merged}/{Total} layers (threshold {Threshold}, lambda {Lambda})",
            Name, Decisions.Count(d => d.Merged), Decisions.Count, options.Threshold, options.Lambda);
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
