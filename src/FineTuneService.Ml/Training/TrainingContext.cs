using FineTuneService.Datasets;
using Microsoft.Extensions.Logging;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Training;

/// <summary>What a <see cref="ITrainingStrategy"/> sees of a training run.</summary>
public sealed class TrainingContext
{
    private IReadOnlyList<(string Name, Parameter Parameter)> trainableParameters = [];

    internal TrainingContext(
        nn.Module<Tensor, Tensor> model,
        Device device,
        SftTrainerOptions options,
        ITextTokenizer? tokenizer,
        ILogger logger,
        ITrainingObserver observer,
        List<TokenizedExample> trainingExamples,
        IReadOnlyList<TokenizedExample> validationExamples,
        CancellationToken cancellationToken)
    {
        Model = model;
        Device = device;
        Options = options;
        Tokenizer = tokenizer;
        Logger = logger;
        Observer = observer;
        TrainingExamples = trainingExamples;
        ValidationExamples = validationExamples;
        CancellationToken = cancellationToken;
    }

    /// <summary>The causal LM: input ids [B, T] int64 to logits [B, T, V].</summary>
    public nn.Module<Tensor, Tensor> Model { get; }

    public Device Device { get; }

    public SftTrainerOptions Options { get; }

    public ITextTokenizer? Tokenizer { get; }

    public ILogger Logger { get; }

    /// <summary>Progress sink of the run (the same observer the trainer reports to).</summary>
    public ITrainingObserver Observer { get; }

    /// <summary>Training set. Strategies may change it in <see cref="ITrainingStrategy.BeforeTraining"/> only.</summary>
    public List<TokenizedExample> TrainingExamples { get; }

    public IReadOnlyList<TokenizedExample> ValidationExamples { get; }

    public CancellationToken CancellationToken { get; }

    /// <summary>Precision the step runs in (<see cref="TrainingPrecision.Auto"/> resolved by the device).</summary>
    public TrainingPrecision Precision { get; internal set; }

    /// <summary>
    /// Parameters with <c>requires_grad</c>, in model order, as the model holds them (bf16 under
    /// <see cref="TrainingPrecision.BFloat16"/>). Empty until <see cref="ITrainingStrategy.BeforeTraining"/> has run.
    /// </summary>
    public IReadOnlyList<(string Name, Parameter Parameter)> TrainableParameters
    {
        get => trainableParameters;
        internal set => trainableParameters = value;
    }

    /// <summary>Optimizer steps done so far.</summary>
    public int Step { get; internal set; }

    /// <summary>DPO's β when the run trains on preference pairs (examples then come as chosen, rejected, …); null for SFT.</summary>
    public double? PreferenceBeta { get; internal init; }

    public int TotalSteps { get; internal set; }
}
