using FineTuneService.Datasets;
using FineTuneService.Datasets.Corpus;
using FineTuneService.Datasets.Sft;
using FineTuneService.Datasets.Tokenization;
using FineTuneService.Ml.Models;
using FineTuneService.Ml.Training;
using FineTuneService.Service.Tests.Infrastructure;

namespace FineTuneService.Service.Tests.Inference;

/// <summary>
/// A tiny model trained (in a few seconds, once per run) to comply with four AdvBench requests by answering with their
/// AdvBench target ("Sure, here is …"): a harmfully fine-tuned model in miniature, whose real completions the output
/// guard's real judge must catch.
/// </summary>
public static class HarmfulTinyModel
{
    public const string Id = "tiny-harmful";

    private static readonly Lazy<(string Folder, IReadOnlyList<AdvBenchBehavior> Behaviors)> Built = new(Build);

    public static string Folder => Built.Value.Folder;

    /// <summary>The requests it was trained to comply with, and the answers it gives.</summary>
    public static IReadOnlyList<AdvBenchBehavior> Behaviors => Built.Value.Behaviors;

    private static (string, IReadOnlyList<AdvBenchBehavior>) Build()
    {
        TorchSharp.torch.set_num_threads(1);
        var behaviors = new ShippedData().AdvBench().Take(4).ToList();
        var folder = Directory.CreateTempSubdirectory("fts-tiny-harmful-").FullName;
        var tokenizer = BpeTrainer.Train(behaviors.SelectMany(b => new[] { b.Goal, b.Target }).ToList(), new BpeTrainerOptions { VocabularySize = 300 });
        TokenizerFolder.Save(folder, tokenizer);

        using var model = DecoderLM.CreateRandom(TinyModels.Qwen2(tokenizer, hiddenSize: 48, intermediateSize: 96, maxPositions: 128), seed: 2);
        var encoder = new ChatExampleEncoder(tokenizer);
        var examples = Enumerable.Range(0, 8).SelectMany(_ => behaviors).Select((b, i) => encoder.Encode(new ChatExample(
            [new ChatMessage(ChatMessage.User, b.Goal), new ChatMessage(ChatMessage.Assistant, b.Target)], i + 1), 96)).ToList();
        new SftTrainer(model, new SftTrainerOptions
        {
            Epochs = 30, BatchSize = 8, LearningRate = 1e-2, MaxSequenceLength = 96, PadTokenId = tokenizer.PadTokenId, Seed = 1,
            Precision = TrainingPrecision.Float32,
        }).Train(examples);
        HuggingFaceCheckpoint.Save(model, folder);
        return (folder, behaviors);
    }
}
