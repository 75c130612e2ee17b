using System.Text.Json.Nodes;
using FineTuneService.Datasets.Tokenization;
using FineTuneService.Ml.Evaluation.Evaluators;
using FineTuneService.Ml.Models;

namespace FineTuneService.Ml.Tests.Evaluation;

public class ModelResponseGeneratorTests
{
    private static readonly ByteLevelBpeTokenizer Tokenizer = TinyTokenizer.Trained;

    private static DecoderLM TinyModel() => DecoderLM.CreateRandom(new DecoderConfig
    {
        ModelType = DecoderConfig.Llama,
        VocabSize = Tokenizer.VocabularySize,
        HiddenSize = 16,
        IntermediateSize = 32,
        NumHiddenLayers = 1,
        NumAttentionHeads = 2,
        MaxPositionEmbeddings = 96,
        EosTokenIdNode = JsonValue.Create(Tokenizer.EosTokenId),
    }, seed: 5);

    private static readonly string[] Prompts = ["How do I bake bread?", "hi", "Classify: a great film", "What is 2+2?", "Tell me a story about a dragon"];

    [Fact]
    public async Task Gives_one_response_per_prompt_independent_of_order_and_batch()
    {
        using var model = TinyModel();
        var settings = new GenerationSettings(MaxNewTokens: 6);

        var forward = await new ModelResponseGenerator(model, Tokenizer, batchSize: 2).GenerateAsync(Prompts, settings);
        var backward = await new ModelResponseGenerator(model, Tokenizer, batchSize: 2).GenerateAsync(Prompts.Reverse().ToList(), settings);

        Assert.Equal(Prompts.Length, forward.Count);
        Assert.Equal(forward, backward.Reverse());
        Assert.Contains(forward, r => r.Length > 0);
    }

    [Fact]
    public async Task Over_long_prompts_are_cut_to_fit_the_context()
    {
        using var model = TinyModel();
        var longPrompt = string.Join(' ', Enumerable.Repeat("tell me more about this", 60));

        var responses = await new ModelResponseGenerator(model, Tokenizer).GenerateAsync([longPrompt], new GenerationSettings(MaxNewTokens: 8));

        Assert.Single(responses);
    }

    [Fact]
    public async Task Token_budget_must_leave_room_for_the_prompt()
    {
        using var model = TinyModel();

        await Assert.ThrowsAsync<ArgumentException>(() =>
            new ModelResponseGenerator(model, Tokenizer).GenerateAsync(["hi"], new GenerationSettings(MaxNewTokens: 96)));
    }
}
