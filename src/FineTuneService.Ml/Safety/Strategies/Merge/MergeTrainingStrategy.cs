using FineTuneService.Contracts.Safety;
using FineTuneService.Ml.Training;
using Microsoft.Extensions.Logging;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Safety.Strategies.Merge;

/// <summary>
/// <c>merge</c> in the trainer: after training, theta = theta_base + lambda * tau with tau the fine-tune update as the
/// method shapes it (<see cref="MergeParams"/>). Full fine-tune: the trainable weights are snapshotted before training.
/// LoRA (linear only, which the contract enforces): lora_B scaled by lambda, which is exact.
/// </summary>
public sealed class MergeTrainingStrategy(MergeParams options) : ISafetyTrainingStrategy<MergeParams>, IDisposable
{
    private static readonly string Name = SafetyStrategies.Registry.For<MergeParams>().Name;

    public static ITrainingStrategy Create(MergeParams parameters, EncodedSafetyData data) => new MergeTrainingStrategy(parameters);

    private Dictionary<string, Tensor>? _baseWeights;

    public IReadOnlyList<string> Merged { get; private set; } = [];

    public string PostTrainingStep => Name;

    public void BeforeTraining(TrainingContext context)
    {
        Dispose();
        _baseWeights = BaseSnapshot.OfFullFineTune(context.Model);
        if (_baseWeights is null && options.Method != MergeMethods.Linear)
            throw new SafetyStrategyConfigurationException($"{Name} with method {options.Method} needs a full fine-tune; use method linear with a LoRA adapter.");
    }

    public void AfterTraining(TrainingContext context)
    {
        var trainable = context.TrainableParameters.Select(p => (p.Name, p.Parameter)).ToArray();
        var lambda = options.EffectiveLambda;
        Merged = (_baseWeights, options.Method) switch
        {
            (null, _) => WeightMerge.ScaleLoraUpdates(trainable, lambda),
            (_, MergeMethods.Ties) => TaskVectorMerging.MergeInPlace(trainable, _baseWeights, lambda, t => TaskVectorMerging.Ties(t, options.Density)),
            (_, MergeMethods.Pcb) => TaskVectorMerging.MergeInPlace(trainable, _baseWeights, lambda, t => TaskVectorMerging.Pcb(t, options.PcbRatio)),
            _ => WeightMerge.MergeInPlace(trainable, _baseWeights, lambda),
        };
        context.Logger.LogInformation("{Strategy} ({Method}): merged {Count} tensors with lambda {Lambda}", Name, options.Method, Merged.Count, lambda);
        Dispose();
    }

    public void Dispose()
    {
        BaseSnapshot.Dispose(_baseWeights);
        _baseWeights = null;
    }
}
