using System.Text.Json.Nodes;
using FineTuneService.Datasets;
using FineTuneService.Datasets.Tokenization;
using FineTuneService.Ml.Models;
using FineTuneService.Service.Tests.Infrastructure;

namespace FineTuneService.Service.Tests.Worker;

/// <summary>
/// A Qwen2-style model of a few ten thousand parameters with its own byte-level BPE tokenizer, written as a Hugging
/// Face folder in well under a second; built once per test run and registered as a base model by each test.
/// </summary>
public static class TinyBaseModel
{
    public const string Id = "tiny-test";

    private static readonly Lazy<string> LazyFolder = new(Build);

    /// <summary>The model's Hugging Face folder.</summary>
    public static string Folder => LazyFolder.Value;

    /// <summary>Simple arithmetic chats: learnable by a tiny model, so the loss visibly falls.</summary>
    public static IReadOnlyList<ChatExample> Examples(int count) =>
        Enumerable.Range(0, count).Select(i =>
        {
            int a = i % 7, b = (i * 3) % 5;
            return new ChatExample(
                [new ChatMessage("user", $"What is {a} plus {b}?"), new ChatMessage("assistant", $"{a} plus {b} is {a + b}.")],
                i + 1);
        }).ToList();

    /// <summary>The examples as the JSONL a tenant would upload.</summary>
    public static string Jsonl(int count) => string.Join('\n', Examples(count).Select(e => new JsonObject
    {
        ["messages"] = new JsonArray(e.Messages.Select(m => (JsonNode)new JsonObject { ["role"] = m.Role, ["content"] = m.Content }).ToArray()),
    }.ToJsonString())) + "\n";

    private static string Build()
    {
        // A model this small gains nothing from intra-op threads, and on a busy 2-core box they mostly spin.
        TorchSharp.torch.set_num_threads(1);
        var folder = Directory.CreateTempSubdirectory("fts-tiny-model-").FullName;
        var texts = Examples(64).SelectMany(e => e.Messages.Select(m => m.Content)).ToList();
        var tokenizer = BpeTrainer.Train(texts, new BpeTrainerOptions { VocabularySize = 320 });
        TokenizerFolder.Save(folder, tokenizer);

        using var model = DecoderLM.CreateRandom(TinyModels.Qwen2(tokenizer, hiddenSize: 32, intermediateSize: 64, maxPositions: 128), seed: 1);
        HuggingFaceCheckpoint.Save(model, folder);
        return folder;
    }
}
