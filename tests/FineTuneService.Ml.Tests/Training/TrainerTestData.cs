using FineTuneService.Datasets;
using FineTuneService.Ml.Lora;
using FineTuneService.Ml.Models;
using FineTuneService.Ml.Tests.Models;
using FineTuneService.Ml.Training;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Tests.Training;

internal static class TrainerTestData
{
    public const int Vocabulary = 32;
    private const int Bos = 1, Separator = 2, EndOfTurn = 3;

    /// <summary>"user" turn of random tokens, then the assistant answers with the same tokens reversed.</summary>
    public static List<TokenizedExample> ReverseTask(int count, int seed = 1, int minLength = 3, int maxLength = 6, int? trailing = null)
    {
        var random = new Random(seed);
        var examples = new List<TokenizedExample>();
        for (var i = 0; i < count; i++)
        {
            var prompt = Enumerable.Range(0, random.Next(minLength, maxLength + 1)).Select(_ => random.Next(4, Vocabulary)).ToArray();
            var ids = new List<int> { Bos };
            ids.AddRange(prompt);
            ids.Add(Separator);
            var answerStart = ids.Count;
            ids.AddRange(prompt.Reverse());
            ids.Add(EndOfTurn);
            var mask = ids.Select((_, t) => t >= answerStart).ToList();
            if (trailing is { } token)
            {
                ids.Add(token);
                mask.Add(false);
            }
            examples.Add(new TokenizedExample([.. ids], [.. mask]));
        }
        return examples;
    }

    /// <summary>The real Llama-style decoder, tiny (a few thousand weights).</summary>
    public static DecoderLM Decoder(long seed = 7) => DecoderLM.CreateRandom(TinyModels.Llama(), seed);

    /// <summary>The tiny decoder with LoRA adapters (dropout 0.1, which draws from torch's RNG) on a frozen base.</summary>
    public static DecoderLM LoraDecoder(long seed = 7)
    {
        var model = Decoder(seed);
        LoraAdapter.Inject(model, new LoraConfig { Rank = 4, Alpha = 8, Dropout = 0.1, TargetModules = DecoderKeys.AttentionProjections }, seed);
        return model;
    }

    /// <summary>"decoder": <see cref="Decoder"/> (full fine-tuning); "lora": <see cref="LoraDecoder"/>.</summary>
    public static DecoderLM Model(string kind) => kind switch
    {
        "decoder" => Decoder(),
        "lora" => LoraDecoder(),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };

    public static SftTrainerOptions Options(string? checkpointDirectory = null) => new()
    {
        Epochs = 2,
        BatchSize = 4,
        MaxSequenceLength = 32,
        LearningRate = 1e-2,
        WarmupSteps = 2,
        Seed = 11,
        CheckpointDirectory = checkpointDirectory,
        BaseModelReference = "tiny-llama@seed7",
    };

    public static Dictionary<string, float[]> Snapshot(TorchSharp.torch.nn.Module model) =>
        model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().cpu().data<float>().ToArray());
}

/// <summary>Observer built from lambdas.</summary>
internal sealed class DelegateObserver(
    Action<TrainingProgress>? progress = null,
    Action<EvaluationResult>? evaluation = null,
    Action<CheckpointWritten>? checkpoint = null) : ITrainingObserver
{
    public void OnProgress(TrainingProgress value) => progress?.Invoke(value);
    public void OnEvaluation(EvaluationResult value) => evaluation?.Invoke(value);
    public void OnCheckpoint(CheckpointWritten value) => checkpoint?.Invoke(value);
}

/// <summary>Strategy built from lambdas.</summary>
internal sealed class DelegateStrategy(
    Action<TrainingContext>? before = null,
    Action<TrainingContext, int>? onGradients = null,
    Action<TrainingContext>? after = null) : ITrainingStrategy
{
    public void BeforeTraining(TrainingContext context) => before?.Invoke(context);
    public void OnGradients(TrainingContext context, int step) => onGradients?.Invoke(context, step);
    public void AfterTraining(TrainingContext context) => after?.Invoke(context);
}
