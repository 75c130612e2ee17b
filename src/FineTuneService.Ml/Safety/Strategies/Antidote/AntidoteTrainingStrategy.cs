using FineTuneService.Contracts.Safety;
using FineTuneService.Datasets;
using FineTuneService.Ml.Training;
using Microsoft.Extensions.Logging;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Safety.Strategies.Antidote;

/// <summary>
/// <c>antidote</c> in the trainer: after the last step, gathers fp32 input statistics over the harmful re-alignment set
/// (harmful prompt + harmful answer, every token) and prunes the fine-tune update (<see cref="AntidotePruner"/>).
/// For a full fine-tune the base weights of the trainable matrices are snapshotted before training.
/// </summary>
public sealed class AntidoteTrainingStrategy(AntidoteParams options, IReadOnlyList<TokenizedExample> realignmentExamples)
    : ISafetyTrainingStrategy<AntidoteParams>, IDisposable
{
    private static readonly string Name = SafetyStrategies.Registry.For<AntidoteParams>().Name;

    public static ITrainingStrategy Create(AntidoteParams parameters, EncodedSafetyData data) =>
        new AntidoteTrainingStrategy(parameters, data.RequireHarmfulAnswers(Name));

    private readonly AntidotePruner _pruner = new(options);
    private Dictionary<string, Tensor>? _baseWeights;

    public AntidoteReport? Report { get; private set; }

    public string PostTrainingStep => Name;

    public void BeforeTraining(TrainingContext context)
    {
        DisposeBase();
        var trainable = context.Model.named_parameters().Where(p => p.parameter.requires_grad).ToArray();
        if (trainable.Any(p => LayerParameterNames.IsLoraFactor(p.name))) return;
        _baseWeights = trainable
            .Where(p => p.parameter.dim() == 2 && LayerParameterNames.LayerIndex(p.name) is not null)
            .ToDictionary(p => p.name, p => p.parameter.detach().clone().DetachFromDisposeScope(), StringComparer.Ordinal);
    }

    public void AfterTraining(TrainingContext context)
    {
        var model = context.Model;
        var samples = SafetyLoss.Choose(realignmentExamples, options.CalibrationSamples, context.Options.Seed, "re-alignment");
        var trainable = context.TrainableParameters.Select(p => (p.Name, p.Parameter)).ToArray();
        var lora = trainable.Any(p => LayerParameterNames.IsLoraFactor(p.Name));
        var modules = lora
            ? trainable.Where(p => LayerParameterNames.IsLoraFactor(p.Name)).Select(p => LayerParameterNames.ModuleOf(p.Name))
            : _baseWeights!.Keys.Select(LayerParameterNames.ModuleOf);
        var watched = modules.ToHashSet(StringComparer.Ordinal);

        Dictionary<string, Tensor> stats;
        using (var recorder = new ModuleInputStatistics(model, watched.Contains))
        {
            SafetyLoss.InEvalMode(model, () =>
            {
                using var noGrad = no_grad();
                foreach (var example in samples)
                {
                    using var scope = NewDisposeScope();
                    var length = Math.Min(example.Length, context.Options.MaxSequenceLength);
                    model.call(tensor(example.InputIds[..length].Select(i => (long)i).ToArray(), device: context.Device).unsqueeze(0));
                }
                return 0;
            });
            stats = recorder.MeanSquares();
        }
        try
        {
            Report = lora ? _pruner.PruneLora(trainable, stats) : _pruner.PruneFullFineTune(trainable, _baseWeights!, stats);
            context.Logger.LogInformation("{Strategy}: pruned {Pruned} entries of {Weights} weights (dense_ratio {Ratio})",
                Name, Report.TotalPruned, Report.PrunedPerWeight.Count, options.DenseRatio);
        }
        finally
        {
            foreach (var s in stats.Values) s.Dispose();
            DisposeBase();
        }
    }

    public void Dispose() => DisposeBase();

    private void DisposeBase()
    {
        BaseSnapshot.Dispose(_baseWeights);
        _baseWeights = null;
    }
}
