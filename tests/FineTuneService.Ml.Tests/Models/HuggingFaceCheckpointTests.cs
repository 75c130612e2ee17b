using System.Text.Json.Nodes;
using FineTuneService.Ml.Models;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Tests.Models;

public sealed class HuggingFaceCheckpointTests
{
    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Float16)]
    public void Saved_then_loaded_model_is_bit_identical(ScalarType dtype)
    {
        using var model = DecoderLM.CreateRandom(TinyModels.Qwen2(), seed: 21, dtype);
        using var directoryScratch = new TempDirectory();
        var directory = directoryScratch.Path;

        HuggingFaceCheckpoint.Save(model, directory);
        var loaded = HuggingFaceCheckpoint.Load(directory);
        using var reloaded = loaded.Model;

        Assert.Equal(dtype, reloaded.DType);
        Assert.Equal(HuggingFaceCheckpoint.DTypeName(dtype), JsonNode.Parse(File.ReadAllText(Path.Combine(directory, "config.json")))!["torch_dtype"]!.GetValue<string>());
        var (expected, actual) = (model.state_dict(), reloaded.state_dict());
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        Assert.All(expected.Keys, k => TensorAssert.Identical(expected[k], actual[k], k));
        Assert.Equal([4, 5], loaded.Generation.EosTokenIds);
    }

    [Fact]
    public void Sharded_save_loads_back_and_copies_tokenizer_files()
    {
        using var model = DecoderLM.CreateRandom(TinyModels.Llama(), seed: 2);
        using var sourceScratch = new TempDirectory();
        var source = sourceScratch.Path;
        File.WriteAllText(Path.Combine(source, "tokenizer.json"), "{\"version\":\"1.0\"}");
        File.WriteAllText(Path.Combine(source, "model.safetensors"), "stale weights are not copied");
        using var directoryScratch = new TempDirectory();
        var directory = directoryScratch.Path;

        var written = HuggingFaceCheckpoint.Save(model, directory, maxShardBytes: 4096, copyOtherFilesFrom: source);

        Assert.Contains("model.safetensors.index.json", written);
        Assert.Equal("{\"version\":\"1.0\"}", File.ReadAllText(Path.Combine(directory, "tokenizer.json")));
        Assert.False(File.Exists(Path.Combine(directory, "model.safetensors")));
        using var reloaded = HuggingFaceCheckpoint.Load(directory).Model;
        var (expected, actual) = (model.state_dict(), reloaded.state_dict());
        Assert.All(expected.Keys, k => TensorAssert.Identical(expected[k], actual[k], k));
    }

    [Fact]
    public void Load_can_convert_to_another_dtype()
    {
        using var model = DecoderLM.CreateRandom(TinyModels.Llama(), seed: 8, ScalarType.BFloat16);
        using var directoryScratch = new TempDirectory();
        var directory = directoryScratch.Path;
        HuggingFaceCheckpoint.Save(model, directory);

        using var reloaded = HuggingFaceCheckpoint.Load(directory, ScalarType.Float32).Model;

        Assert.Equal(ScalarType.Float32, reloaded.DType);
        var key = "model.layers.0.mlp.up_proj.weight";
        TensorAssert.Identical(model.state_dict()[key].to_type(ScalarType.Float32), reloaded.state_dict()[key]);
    }

    [Fact]
    public void Checkpoint_that_does_not_match_the_config_is_rejected()
    {
        using var model = DecoderLM.CreateRandom(TinyModels.Llama(), seed: 8);
        using var directoryScratch = new TempDirectory();
        var directory = directoryScratch.Path;
        HuggingFaceCheckpoint.Save(model, directory);
        (TinyModels.Llama() with { NumHiddenLayers = 3 }).Save(Path.Combine(directory, "config.json"));

        var error = Assert.Throws<InvalidDataException>(() => HuggingFaceCheckpoint.Load(directory));
        Assert.Contains("model.layers.2.", error.Message);
    }
}
