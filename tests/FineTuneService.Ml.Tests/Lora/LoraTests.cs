using System.Text.Json.Nodes;
using FineTuneService.Ml.Lora;
using FineTuneService.Ml.Models;
using FineTuneService.Ml.SafeTensors;
using FineTuneService.Ml.Tests.Models;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Tests.Lora;

public sealed class LoraTests
{
    private static readonly LoraConfig Config = new() { Rank = 4, Alpha = 8, Dropout = 0.0, TargetModules = ["q_proj", "v_proj", "down_proj"] };

    private static Tensor Ids() => tensor(new long[] { 3, 14, 15, 9, 2, 6, 5, 35 }).view(2, 4);

    /// <summary>Gives B non-zero values so the adapter changes the output.</summary>
    private static void PerturbB(DecoderLM model, long seed)
    {
        using var generator = new Generator((ulong)seed);
        using var noGrad = no_grad();
        foreach (var (_, adapter) in LoraAdapter.Adapters(model)) adapter.LoraB.normal_(0, 0.5, generator);
    }

    [Fact]
    public void Fresh_adapter_with_zero_B_leaves_logits_unchanged()
    {
        using var model = DecoderLM.CreateRandom(TinyModels.Qwen2(), seed: 1);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var before = model.call(Ids());

        var adapted = LoraAdapter.Inject(model, Config, seed: 9);
        var after = model.call(Ids());

        Assert.Equal(3 * 3, adapted.Count);
        TensorAssert.Identical(before, after);
        Assert.All(LoraAdapter.Adapters(model), a => Assert.Equal(0f, a.Module.LoraB.abs().max().item<float>()));
        Assert.All(LoraAdapter.Adapters(model), a => Assert.True(a.Module.LoraA.abs().max().item<float>() > 0));
    }

    [Fact]
    public void Keys_follow_peft_and_only_lora_factors_train()
    {
        using var model = DecoderLM.CreateRandom(TinyModels.Qwen2(), seed: 1);
        LoraAdapter.Inject(model, Config);
        var state = model.state_dict();

        Assert.Contains("model.layers.0.self_attn.q_proj.weight", state.Keys);
        Assert.Contains("model.layers.0.self_attn.q_proj.bias", state.Keys);
        Assert.Equal(new long[] { 4, 24 }, state["model.layers.0.self_attn.q_proj.lora_A.weight"].shape);
        Assert.Equal(new long[] { 24, 4 }, state["model.layers.0.self_attn.q_proj.lora_B.weight"].shape);
        Assert.Equal(new long[] { 4, 48 }, state["model.layers.2.mlp.down_proj.lora_A.weight"].shape);
        Assert.DoesNotContain("model.layers.0.self_attn.k_proj.lora_A.weight", state.Keys);

        var trainable = model.named_parameters().Where(p => p.parameter.requires_grad).Select(p => p.name).ToList();
        Assert.Equal(3 * 3 * 2, trainable.Count);
        Assert.All(trainable, n => Assert.True(LoraAdapter.IsLoraKey(n), n));

        var peftKeys = LoraAdapter.AdapterStateDict(model).Keys;
        Assert.Contains("base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight", peftKeys);
        Assert.All(peftKeys, k => Assert.StartsWith("base_model.model.model.layers.", k));
    }

    [Fact]
    public void Merged_output_equals_unmerged_output()
    {
        using var model = DecoderLM.CreateRandom(TinyModels.Llama(), seed: 4);
        LoraAdapter.Inject(model, Config with { TargetModules = [LoraConfig.AllLinear] }, seed: 2);
        PerturbB(model, 3);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var baseline = model.call(Ids());

        foreach (var (_, adapter) in LoraAdapter.Adapters(model)) adapter.Merge();
        var merged = model.call(Ids());
        foreach (var (_, adapter) in LoraAdapter.Adapters(model)) adapter.Unmerge();
        var unmerged = model.call(Ids());

        Assert.True(baseline.allclose(merged, rtol: 1e-4, atol: 1e-5));
        Assert.True(baseline.allclose(unmerged, rtol: 1e-4, atol: 1e-5));

        LoraAdapter.MergeAndUnload(model);
        Assert.Empty(LoraAdapter.Adapters(model));
        Assert.DoesNotContain(model.state_dict().Keys, LoraAdapter.IsLoraKey);
        Assert.True(baseline.allclose(model.call(Ids()), rtol: 1e-4, atol: 1e-5));
    }

    [Fact]
    public void Adapter_saves_in_peft_format_and_loads_into_a_fresh_base()
    {
        using var directoryScratch = new TempDirectory();
        var directory = directoryScratch.Path;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Tensor expected;
        using (var model = DecoderLM.CreateRandom(TinyModels.Qwen2(), seed: 12))
        {
            LoraAdapter.Inject(model, Config with { BaseModelNameOrPath = "tiny-qwen2" }, seed: 5);
            PerturbB(model, 6);
            expected = model.call(Ids());
            LoraAdapter.Save(model, Config with { BaseModelNameOrPath = "tiny-qwen2" }, directory);
        }

        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(directory, "adapter_config.json")))!;
        Assert.Equal("LORA", json["peft_type"]!.GetValue<string>());
        Assert.Equal(4, json["r"]!.GetValue<int>());
        Assert.Equal(8, json["lora_alpha"]!.GetValue<double>());
        Assert.Equal(["q_proj", "v_proj", "down_proj"], json["target_modules"]!.AsArray().Select(n => n!.GetValue<string>()));
        using (var file = SafeTensorsFile.Open(Path.Combine(directory, "adapter_model.safetensors")))
            Assert.All(file.Tensors.Keys, k => Assert.StartsWith("base_model.model.model.layers.", k));

        using var fresh = DecoderLM.CreateRandom(TinyModels.Qwen2(), seed: 12);
        var loaded = LoraAdapter.Load(fresh, directory);

        Assert.Equal("tiny-qwen2", loaded.BaseModelNameOrPath);
        TensorAssert.Identical(expected, fresh.call(Ids()));
    }

    [Fact]
    public void Mismatched_adapter_is_rejected_and_leaves_the_model_untouched()
    {
        using var directoryScratch = new TempDirectory();
        var directory = directoryScratch.Path;
        using (var model = DecoderLM.CreateRandom(TinyModels.Qwen2(), seed: 12))
        {
            LoraAdapter.Inject(model, Config);
            LoraAdapter.Save(model, Config, directory);
        }
        File.WriteAllText(Path.Combine(directory, "adapter_config.json"), (Config with { TargetModules = ["k_proj"] }).ToJson());

        using var fresh = DecoderLM.CreateRandom(TinyModels.Qwen2(), seed: 12);
        Assert.Throws<InvalidDataException>(() => LoraAdapter.Load(fresh, directory));
        Assert.Empty(LoraAdapter.Adapters(fresh));
    }

    [Fact]
    public void Unsupported_peft_options_are_refused()
    {
        Assert.Throws<NotSupportedException>(() => LoraConfig.FromJson("""{"peft_type":"LORA","r":8,"lora_alpha":16,"target_modules":["q_proj"],"use_dora":true}"""));
        Assert.Throws<NotSupportedException>(() => LoraConfig.FromJson("""{"peft_type":"LORA","r":8,"lora_alpha":16,"target_modules":["lm_head"]}"""));
        var pattern = LoraConfig.FromJson("""{"peft_type":"LORA","r":8,"lora_alpha":16,"target_modules":".*\\.(q_proj|v_proj)"}""");
        Assert.True(pattern.Targets("model.layers.3.self_attn.v_proj"));
        Assert.False(pattern.Targets("model.layers.3.self_attn.k_proj"));
        Assert.Equal(2.0, pattern.Scaling);
    }

    [Fact]
    public void Backward_reaches_only_the_lora_factors()
    {
        using var model = DecoderLM.CreateRandom(TinyModels.Llama(), seed: 4);
        LoraAdapter.Inject(model, Config with { Dropout = 0.1 }, seed: 2);
        model.train();
        using var scope = NewDisposeScope();
        var ids = Ids();

        var logits = model.call(ids);
        var loss = nn.functional.cross_entropy(logits.narrow(1, 0, 3).reshape(-1, logits.shape[^1]), ids.narrow(1, 1, 3).reshape(-1));
        loss.backward();

        foreach (var (name, parameter) in model.named_parameters())
        {
            if (name.EndsWith(".lora_B.weight", StringComparison.Ordinal)) Assert.True(parameter.grad!.abs().sum().item<float>() > 0, name);
            else if (!LoraAdapter.IsLoraKey(name)) Assert.Null(parameter.grad);
        }
        Assert.Equal(Config.Alpha / Config.Rank, LoraAdapter.Adapters(model).First().Module.Scaling);
    }

    [Fact]
    public void Full_checkpoint_save_refuses_unmerged_adapters_and_accepts_merged_ones()
    {
        using var model = DecoderLM.CreateRandom(TinyModels.Llama(), seed: 4);
        LoraAdapter.Inject(model, Config, seed: 2);
        PerturbB(model, 3);
        using var directoryScratch = new TempDirectory();
        var directory = directoryScratch.Path;

        var error = Assert.Throws<InvalidOperationException>(() => HuggingFaceCheckpoint.Save(model, directory));
        Assert.Contains("MergeAndUnload", error.Message);

        LoraAdapter.MergeAndUnload(model);
        HuggingFaceCheckpoint.Save(model, directory);
        using var reloaded = HuggingFaceCheckpoint.Load(directory).Model;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        TensorAssert.Identical(model.call(Ids()), reloaded.call(Ids()));
    }
}
