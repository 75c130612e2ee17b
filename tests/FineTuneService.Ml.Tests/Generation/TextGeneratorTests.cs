using FineTuneService.Ml.Generation;
using FineTuneService.Ml.Models;
using FineTuneService.Ml.Tests.Models;

namespace FineTuneService.Ml.Tests.Generation;

public sealed class TextGeneratorTests
{
    private static readonly IReadOnlyList<int>[] Prompts = [[5, 9, 13, 7], [11, 3], [8, 30, 21]];

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Kv_cache_greedy_output_equals_full_recompute(bool qwen2)
    {
        using var model = DecoderLM.CreateRandom(qwen2 ? TinyModels.Qwen2() : TinyModels.Llama(), seed: 17);
        var generator = new TextGenerator(model);
        var options = new GenerationOptions { MaxNewTokens = 12, StopTokenIds = [] };

        var cached = generator.Generate(Prompts, options);
        var recomputed = generator.Generate(Prompts, options with { UseKvCache = false });

        Assert.All(cached, s => Assert.Equal(12, s.TokenIds.Length));
        Assert.All(cached, s => Assert.Equal(FinishReason.Length, s.FinishReason));
        Assert.Equal(recomputed.Select(s => s.TokenIds), cached.Select(s => s.TokenIds));
    }

    [Fact]
    public void A_bfloat16_model_generates_with_its_kv_cache()
    {
        // Evaluation under Worker:CpuMixedPrecision=Auto loads models in bf16 and generates from them.
        using var model = DecoderLM.CreateRandom(TinyModels.Llama(), seed: 17, TorchSharp.torch.ScalarType.BFloat16);
        var generated = new TextGenerator(model).Generate(Prompts, new GenerationOptions { MaxNewTokens = 12, StopTokenIds = [] });

        Assert.All(generated, s => Assert.Equal(12, s.TokenIds.Length));
        Assert.All(generated, s => Assert.All(s.TokenIds, id => Assert.InRange(id, 0, model.Config.VocabSize - 1)));
    }

    [Fact]
    public void Batched_left_padded_generation_equals_one_prompt_at_a_time()
    {
        using var model = DecoderLM.CreateRandom(TinyModels.Llama(), seed: 23);
        var generator = new TextGenerator(model);
        var options = new GenerationOptions { MaxNewTokens = 8, StopTokenIds = [] };

        var batched = generator.Generate(Prompts, options);
        var single = Prompts.Select(p => generator.Generate([p], options)[0]).ToList();

        Assert.Equal(single.Select(s => s.TokenIds), batched.Select(s => s.TokenIds));
    }

    [Fact]
    public void Stops_at_a_stop_token_and_leaves_it_out()
    {
        using var model = DecoderLM.CreateRandom(TinyModels.Llama(), seed: 23);
        var generator = new TextGenerator(model);
        var free = generator.Generate(Prompts, new GenerationOptions { MaxNewTokens = 8, StopTokenIds = [] });
        var stopToken = free[0].TokenIds[2];

        var stopped = generator.Generate(Prompts, new GenerationOptions { MaxNewTokens = 8, StopTokenIds = [stopToken] });

        var expectedLength = Array.IndexOf(free[0].TokenIds, stopToken);
        Assert.Equal(FinishReason.Stop, stopped[0].FinishReason);
        Assert.Equal(free[0].TokenIds.Take(expectedLength), stopped[0].TokenIds);
        Assert.DoesNotContain(stopToken, stopped[0].TokenIds);
    }

    [Fact]
    public void Sampling_is_deterministic_for_a_seed()
    {
        using var model = DecoderLM.CreateRandom(TinyModels.Qwen2(), seed: 31);
        var generator = new TextGenerator(model);
        var options = new GenerationOptions { MaxNewTokens = 16, Temperature = 1.5, TopP = 0.95, TopK = 30, Seed = 4, StopTokenIds = [] };

        var first = generator.Generate(Prompts, options);
        var second = generator.Generate(Prompts, options);
        var otherSeed = generator.Generate(Prompts, options with { Seed = 5 });
        var greedy = generator.Generate(Prompts, options with { Temperature = 0 });

        Assert.Equal(first.Select(s => s.TokenIds), second.Select(s => s.TokenIds));
        Assert.NotEqual(first.Select(s => s.TokenIds), otherSeed.Select(s => s.TokenIds));
        Assert.NotEqual(first.Select(s => s.TokenIds), greedy.Select(s => s.TokenIds));
    }

    [Fact]
    public void Tiny_top_p_is_greedy()
    {
        using var model = DecoderLM.CreateRandom(TinyModels.Qwen2(), seed: 31);
        var generator = new TextGenerator(model);
        var greedy = generator.Generate(Prompts, new GenerationOptions { MaxNewTokens = 6, StopTokenIds = [] });

        var nucleus = generator.Generate(Prompts, new GenerationOptions { MaxNewTokens = 6, Temperature = 1.0, TopP = 1e-6, Seed = 9, StopTokenIds = [] });

        Assert.Equal(greedy.Select(s => s.TokenIds), nucleus.Select(s => s.TokenIds));
    }

    [Fact]
    public void Saved_models_of_both_architectures_load_back_and_generate_the_same_tokens()
    {
        foreach (var config in new[] { TinyModels.Qwen2(), TinyModels.Llama() })
        {
            using var model = DecoderLM.CreateRandom(config, seed: 3);
            using var directoryScratch = new TempDirectory();
            var directory = directoryScratch.Path;
            HuggingFaceCheckpoint.Save(model, directory);
            using var loaded = HuggingFaceCheckpoint.Load(directory).Model;
            var options = new GenerationOptions { MaxNewTokens = 5, StopTokenIds = [] };

            var expected = new TextGenerator(model).Generate(Prompts, options);
            var actual = new TextGenerator(loaded).Generate(Prompts, options);

            Assert.Equal(expected.Select(s => s.TokenIds), actual.Select(s => s.TokenIds));
            Assert.All(actual, s => Assert.All(s.TokenIds, id => Assert.InRange(id, 0, config.VocabSize - 1)));
        }
    }
}
