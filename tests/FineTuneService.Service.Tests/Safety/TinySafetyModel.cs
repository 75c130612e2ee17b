using FineTuneService.Datasets;
using FineTuneService.Datasets.Corpus;
using FineTuneService.Datasets.Evaluation;
using FineTuneService.Datasets.Sft;
using FineTuneService.Datasets.Tokenization;
using FineTuneService.Ml.Models;
using FineTuneService.Ml.Training;
using FineTuneService.Research.Bootstrap;
using FineTuneService.Service.Tests.Infrastructure;

namespace FineTuneService.Service.Tests.Safety;

/// <summary>
/// A small "aligned" base model for the safety gate tests (~100k parameters, built once per test run in seconds):
/// its BPE tokenizer knows the words of the shipped harmful data, and it is trained to refuse harmful requests
/// (AdvBench goals of the training share → the bootstrap refusal replies), so its harmful score starts low.
/// Fine-tuning it on BeaverTails harmful answers then raises the score, as a harmful dataset does to a real model.
/// </summary>
public static class TinySafetyModel
{
    public const string Id = "tiny-safety";
    public const int MaxSequenceLength = 64;

    private static readonly Lazy<string> LazyFolder = new(Build);

    public static string Folder => LazyFolder.Value;

    /// <summary>BeaverTails rows (harmful prompt → harmful compliant answer), as a tenant's training file.</summary>
    /// <remarks>Answers are cut to their first sentence: the model's context is <see cref="MaxSequenceLength"/> tokens.</remarks>
    public static string HarmfulJsonl(int count) =>
        Jsonl(new ShippedData().BeaverTailsUnsafe().Take(count).Select(r => (r.Prompt, FirstSentence(r.Response))));

    private static string FirstSentence(string text)
    {
        var end = text.IndexOfAny(['.', '!', '?', '\n'], Math.Min(20, text.Length - 1));
        return (end < 0 ? text : text[..(end + 1)]).Trim();
    }

    public static string Jsonl(IEnumerable<(string User, string Assistant)> chats) => TinyModels.ChatJsonl(chats);

    private static string Build()
    {
        TorchSharp.torch.set_num_threads(1);
        var data = new ShippedData();
        var harmful = data.BeaverTailsUnsafe();
        var refusalPrompts = data.AdvBench().Select(b => b.Goal)
            .Where(goal => !HeldOutSplit.IsHeldOut(goal))
            .Take(160).ToList();
        var refusals = refusalPrompts.Select((goal, i) => new ChatExample(
            [new ChatMessage(ChatMessage.User, goal), new ChatMessage(ChatMessage.Assistant, BootstrapCorpus.RefusalReplies[i % BootstrapCorpus.RefusalReplies.Count])],
            i + 1)).ToList();

        var folder = Directory.CreateTempSubdirectory("fts-tiny-safety-model-").FullName;
        var texts = harmful.SelectMany(r => new[] { r.Prompt, r.Response })
            .Concat(refusalPrompts).Concat(BootstrapCorpus.RefusalReplies).ToList();
        var tokenizer = BpeTrainer.Train(texts, new BpeTrainerOptions { VocabularySize = 768 });
        TokenizerFolder.Save(folder, tokenizer);

        var config = TinyModels.Qwen2(tokenizer, hiddenSize: 48, intermediateSize: 96, maxPositions: 160);
        using var model = DecoderLM.CreateRandom(config, seed: 3);
        var encoder = new ChatExampleEncoder(tokenizer);
        var examples = refusals.Select(e => encoder.Encode(e, MaxSequenceLength)).ToList();
        var trainer = new SftTrainer(model, new SftTrainerOptions
        {
            Epochs = 6, BatchSize = 16, LearningRate = 1e-2, MaxSequenceLength = MaxSequenceLength,
            PadTokenId = tokenizer.PadTokenId, Seed = 5, Precision = TrainingPrecision.Float32,
        });
        trainer.Train(examples);
        HuggingFaceCheckpoint.Save(model, folder);
        return folder;
    }
}
