using FineTuneService.Contracts.Safety;
using FineTuneService.Ml.Training;
using Microsoft.Extensions.Logging;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Safety.Strategies.Merge;

/// <summary>
/// <c>merge</c> in the trainer: after training, theta = (1 - lambda) theta_base + lambda theta_ft. LoRA: lora_B scaled by
/// lambda (exact). Full fine-tune: the trainable weights are snapshotted before training and interpolated after.
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
    }

    public void AfterTraining(TrainingContext context)
    {
        var trainable = context.TrainableParameters.Select(p => (p.Name, p.Parameter)).ToArray();
        Merged = _baseWeights is null
            ? WeightMerge.ScaleLoraUpdates(trainable, options.Lambda)
            : WeightMerge.MergeInPlace(trainable, _baseWeights, options.Lambda);
        context.Logger.LogInformation("{Strategy}: interpolated {Count} tensors with lambda {Lambda}", Name, Merged.Count, options.Lambda);
        Dispose();
    }

    public void Dispose()
    {
        BaseSnapshot.Dispose(_baseWeights);
        _baseWeights = null;
    }
}
