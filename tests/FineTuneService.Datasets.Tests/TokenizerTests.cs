using System.Text.Json.Nodes;
using FineTuneService.Datasets.Templates;
using FineTuneService.Datasets.Tokenization;
using FineTuneService.TestSupport;

namespace FineTuneService.Datasets.Tests;

public class TokenizerTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "fts-tok-" + Guid.NewGuid().ToString("N"));

    private static IReadOnlyList<string> Corpus => TinyTokenizer.Corpus;

    private static ByteLevelBpeTokenizer Trained => TinyTokenizer.Trained;

    private static readonly string[] Probes =
    [
        "Hello, world! It's 2024 and we're testing BPE.",
        "  leading spaces\n\nand\ttabs   trailing  ",
        "Ünïcödé: naïve café, 日本語のテキスト, Ελληνικά, emoji 😀👍🏽 and 🏳️‍🌈.",
        "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n",
        "<|endoftext|><|pad|>text glued<|im_end|>",
        "",
    ];

    [Fact]
    public void Training_is_deterministic_and_reaches_the_requested_size()
    {
        var again = BpeTrainer.Train(Corpus, new BpeTrainerOptions { VocabularySize = 400 });

        Assert.Equal(Trained.Model.Merges, again.Model.Merges);
        Assert.Equal(Trained.Model.Vocabulary.OrderBy(kv => kv.Value), again.Model.Vocabulary.OrderBy(kv => kv.Value));
        Assert.Equal(400, Trained.VocabularySize);
        Assert.Equal([396, 397, 398, 399], BpeModel.DefaultSpecialTokens.Select(t => Trained.SpecialTokenId(t)!.Value));
        Assert.True(Trained.Encode(Corpus[0]).Count < System.Text.Encoding.UTF8.GetByteCount(Corpus[0]) / 2, "merges should compress the training text");
    }

    [Theory]
    [MemberData(nameof(ProbeData))]
    public void Own_encoder_round_trips_text_exactly(string text) =>
        Assert.Equal(text, Trained.Decode(Trained.Encode(text)));

    [Fact]
    public void Saved_folder_loads_through_Microsoft_ML_Tokenizers_and_encodes_identically()
    {
        TokenizerFolder.Save(_directory, Trained, ChatTemplate.ChatMl, modelMaxLength: 256);
        var loaded = TokenizerFolder.Load(_directory);

        Assert.IsType<Microsoft.ML.Tokenizers.BpeTokenizer>(loaded.Inner);
        foreach (string text in Probes.Concat(Corpus.Take(200)))
        {
            Assert.Equal(Trained.Encode(text), loaded.Encode(text));
            Assert.Equal(Trained.EncodeOrdinary(text), loaded.EncodeOrdinary(text));
            Assert.Equal(text, loaded.Decode(loaded.Encode(text)));
            Assert.Equal(text, loaded.Decode(loaded.EncodeOrdinary(text)));
        }

        Assert.Equal((Trained.EosTokenId, Trained.PadTokenId, Trained.BosTokenId), (loaded.EosTokenId, loaded.PadTokenId, loaded.BosTokenId));
        Assert.Equal(Trained.VocabularySize, loaded.VocabularySize);
        Assert.Same(ChatTemplate.ChatMl, loaded.ChatTemplate);
        Assert.Equal(256, loaded.ModelMaxLength);
    }

    /// <summary>
    /// Ids produced by Hugging Face's tokenizers.js (@huggingface/tokenizers 0.2.0) from the folder this test suite's
    /// tokenizer saves (400-token vocabulary trained on <see cref="Corpus"/>); a cross-implementation golden check.
    /// </summary>
    [Theory]
    [InlineData("Hello, world! It's 2024 and we're testing BPE.", new[] { 39, 68, 75, 75, 78, 11, 283, 322, 0, 220, 40, 83, 301, 220, 17, 15, 17, 19, 363, 395, 343, 267, 256, 262, 77, 70, 220, 33, 47, 36, 13 })]
    [InlineData("Ünïcödé: naïve café, 日本語, emoji 😀👍🏽.", new[] { 127, 250, 77, 127, 107, 66, 127, 114, 67, 349, 25, 373, 220, 350, 11, 220, 377, 11, 389, 393, 331, 239, 235, 331, 237, 121, 13 })]
    [InlineData("  spaces\n\n\ttabs  ", new[] { 220, 265, 79, 64, 66, 256, 198, 198, 197, 83, 64, 65, 82, 220, 220 })]
    [InlineData("<|im_start|>user\nhi<|im_end|>\n", new[] { 397, 300, 198, 71, 72, 398, 198 })]
    [InlineData("the model refuses harmful requests 123", new[] { 83, 266, 220, 328, 380, 388, 390, 384 })]
    public void Encodes_like_Hugging_Face_tokenizers(string text, int[] huggingFaceIds)
    {
        TokenizerFolder.Save(_directory, Trained);

        Assert.Equal(huggingFaceIds, Trained.Encode(text));
        Assert.Equal(huggingFaceIds, TokenizerFolder.Load(_directory).Encode(text));
    }

    [Fact]
    public void A_split_regex_pre_tokenizer_round_trips_through_tokenizer_json()
    {
        const string qwen2Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
        var custom = new ByteLevelBpeTokenizer(Trained.Model with { PreTokenizerPattern = qwen2Pattern });
        TokenizerFolder.Save(_directory, custom);

        var loaded = TokenizerFolder.Load(_directory);

        Assert.Equal(qwen2Pattern, loaded.Model.PreTokenizerPattern);
        foreach (string text in Probes)
            Assert.Equal(custom.Encode(text), loaded.Encode(text));
        Assert.NotEqual(Trained.Encode("requests 123"), custom.Encode("requests 123")); // Qwen2 splits digits one by one
    }

    [Fact]
    public void Vocab_and_merges_files_alone_load_the_same_tokenizer()
    {
        TokenizerFolder.Save(_directory, Trained);
        File.Delete(Path.Combine(_directory, TokenizerFolder.TokenizerJsonFile));
        var loaded = TokenizerFolder.Load(_directory);

        foreach (string text in Probes)
            Assert.Equal(Trained.Encode(text), loaded.Encode(text));
    }

    [Fact]
    public void Saved_files_follow_the_Hugging_Face_layout()
    {
        TokenizerFolder.Save(_directory, Trained);

        var tokenizerJson = JsonNode.Parse(File.ReadAllText(Path.Combine(_directory, "tokenizer.json")))!;
        Assert.Equal("BPE", (string?)tokenizerJson["model"]!["type"]);
        Assert.Equal("ByteLevel", (string?)tokenizerJson["pre_tokenizer"]!["type"]);
        Assert.Equal("ByteLevel", (string?)tokenizerJson["decoder"]!["type"]);
        Assert.Equal(4, tokenizerJson["added_tokens"]!.AsArray().Count);
        Assert.Equal(Trained.Model.Merges.Count, tokenizerJson["model"]!["merges"]!.AsArray().Count);

        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(_directory, "tokenizer_config.json")))!;
        Assert.Equal(ChatTemplate.ChatMlJinja, (string?)config["chat_template"]);
        Assert.Equal("<|im_end|>", (string?)config["eos_token"]);
        Assert.Equal("<|pad|>", (string?)config["pad_token"]);
        Assert.Equal("#version: 0.2", File.ReadLines(Path.Combine(_directory, "merges.txt")).First());
        Assert.True(File.Exists(Path.Combine(_directory, "special_tokens_map.json")));
        Assert.True(File.Exists(Path.Combine(_directory, "vocab.json")));
    }

    [Fact]
    public void Special_tokens_encode_to_single_ids()
    {
        var ids = Trained.Encode("<|im_start|>user");
        Assert.Equal(Trained.SpecialTokenId("<|im_start|>"), ids[0]);
        Assert.DoesNotContain(Trained.SpecialTokenId("<|im_start|>")!.Value, Trained.Encode("<|im_start |>"));
        Assert.DoesNotContain(Trained.SpecialTokenId("<|im_start|>")!.Value, Trained.EncodeOrdinary("<|im_start|>user"));
    }

    public static TheoryData<string> ProbeData() => new(Probes);

    public void Dispose()
    {
        if (Directory.Exists(_directory))
            Directory.Delete(_directory, recursive: true);
    }
}
