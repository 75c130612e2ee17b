using System.Text.Json.Nodes;
using FineTuneService.Ml.Models;

namespace FineTuneService.Ml.Tests.Models;

public sealed class DecoderConfigTests
{
    private const string Qwen2Config = """
        {
          "architectures": ["Qwen2ForCausalLM"],
          "attention_dropout": 0.0,
          "bos_token_id": 151643,
          "eos_token_id": 151645,
          "hidden_act": "silu",
          "hidden_size": 896,
          "initializer_range": 0.02,
          "intermediate_size": 4864,
          "max_position_embeddings": 32768,
          "max_window_layers": 21,
          "model_type": "qwen2",
          "num_attention_heads": 14,
          "num_hidden_layers": 24,
          "num_key_value_heads": 2,
          "rms_norm_eps": 1e-06,
          "rope_theta": 1000000.0,
          "sliding_window": 32768,
          "tie_word_embeddings": true,
          "torch_dtype": "bfloat16",
          "transformers_version": "4.43.1",
          "use_cache": true,
          "use_sliding_window": false,
          "vocab_size": 151936
        }
        """;

    [Fact]
    public void Parses_a_qwen2_config_and_round_trips_every_key()
    {
        var config = DecoderConfig.FromJson(Qwen2Config);

        Assert.Equal(64, config.HeadDim);
        Assert.Equal(2, config.KeyValueHeads);
        Assert.True(config.QkvBias);
        Assert.False(config.OutputProjectionBias);
        Assert.True(config.TieWordEmbeddings);
        Assert.Equal([151645], config.EosTokenIds);
        Assert.Equal(TorchSharp.torch.ScalarType.BFloat16, config.StorageDType);

        var original = JsonNode.Parse(Qwen2Config)!.AsObject();
        var written = JsonNode.Parse(config.ToJson())!.AsObject();
        Assert.Equal(original.Select(p => p.Key).Order(), written.Select(p => p.Key).Order());
        Assert.All(original, p => Assert.True(JsonNode.DeepEquals(p.Value, written[p.Key]), p.Key));
        Assert.Equal(config.ToJson(), DecoderConfig.FromJson(config.ToJson()).ToJson());
    }

    [Fact]
    public void Llama_eos_list_and_dtype_key_are_understood()
    {
        var json = JsonNode.Parse(TinyModels.Llama().ToJson())!.AsObject();
        json["eos_token_id"] = new JsonArray(2, 7);
        json.Remove("torch_dtype");
        json["dtype"] = "float16";

        var config = DecoderConfig.FromJson(json.ToJsonString());

        Assert.Equal([2, 7], config.EosTokenIds);
        Assert.Equal("float16", config.TorchDtype);
    }

    [Theory]
    [InlineData("gpt_neox")]
    [InlineData("mistral")]
    public void Unknown_model_type_is_refused(string modelType)
    {
        var json = JsonNode.Parse(Qwen2Config)!.AsObject();
        json["model_type"] = modelType;

        var error = Assert.Throws<NotSupportedException>(() => DecoderConfig.FromJson(json.ToJsonString()));
        Assert.Contains(modelType, error.Message);
        Assert.Contains("qwen2", error.Message);
    }

    [Fact]
    public void Unsupported_features_are_refused()
    {
        var json = JsonNode.Parse(Qwen2Config)!.AsObject();
        json["rope_scaling"] = new JsonObject { ["type"] = "yarn", ["factor"] = 4.0 };
        Assert.Throws<NotSupportedException>(() => DecoderConfig.FromJson(json.ToJsonString()));

        var mismatched = JsonNode.Parse(Qwen2Config)!.AsObject();
        mismatched["num_key_value_heads"] = 3;
        Assert.Throws<InvalidDataException>(() => DecoderConfig.FromJson(mismatched.ToJsonString()));
    }

    [Fact]
    public void Llama3_rope_scaling_keeps_short_wavelengths_and_stretches_long_ones()
    {
        var json = JsonNode.Parse(TinyModels.Llama().ToJson())!.AsObject();
        json["hidden_size"] = 32; // head_dim 8: frequencies 1, 0.1, 0.01, 0.001 with theta 10000
        json["rope_scaling"] = new JsonObject
        {
            ["rope_type"] = "llama3", ["factor"] = 8.0, ["low_freq_factor"] = 1.0, ["high_freq_factor"] = 4.0,
            ["original_max_position_embeddings"] = 1000,
        };
        var config = DecoderConfig.FromJson(json.ToJsonString());

        var frequencies = RotaryEmbedding.InverseFrequencies(config);

        // Wavelengths 6.3 and 63 are below 1000/4 and stay; 6283 is above 1000 and is divided by 8;
        // 628 lies between and is interpolated with smooth = (1000/628.3 - 1) / 3.
        var smooth = (1000 / (2 * Math.PI / 0.01) - 1) / 3;
        Assert.Equal(1.0, frequencies[0], 6);
        Assert.Equal(0.1, frequencies[1], 6);
        Assert.Equal((1 - smooth) * 0.01 / 8 + smooth * 0.01, frequencies[2], 6);
        Assert.Equal(0.001 / 8, frequencies[3], 6);
        Assert.Contains("llama3", config.ToJson());
    }
}
