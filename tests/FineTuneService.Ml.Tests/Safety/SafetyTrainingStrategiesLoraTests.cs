using FineTuneService.Datasets;
using FineTuneService.Ml.Lora;
using FineTuneService.Ml.Models;
using FineTuneService.Ml.Safety.Strategies;
using FineTuneService.Ml.Safety.Strategies.Antidote;
using FineTuneService.Ml.Safety.Strategies.FrozenLayers;
using FineTuneService.Ml.Safety.Strategies.Merge;
using FineTuneService.Ml.Tests.Models;
using FineTuneService.Ml.Tests.Training;
using FineTuneService.Ml.Training;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Tests.Safety;

// SftTrainer seeds torch's process-wide generator, so these must not run beside other torch tests.
/// <summary>The strategies on a LoRA fine-tune of the tiny decoder, and the safety layer locator on the real model.</summary>
[Collection(Training.TorchGlobalStateCollection.Name)]
public sealed class SafetyTrainingStrategiesLoraTests
{
    private static DecoderLM LoraModel()
    {
        var model = DecoderLM.CreateRandom(TinyModels.Llama() with { NumHiddenLayers = 4, VocabSize = TrainerTestData.Vocabulary }, seed: 5);
        LoraAdapter.Inject(model, new LoraConfig { Rank = 4, Alpha = 8, Dropout = 0, TargetModules = ["q_proj", "v_proj", "up_proj"] }, seed: 3);
        return model;
    }

    private static readonly IReadOnlyList<TokenizedExample> Task = TrainerTestData.ReverseTask(8, seed: 1);
    private static readonly EncodedSafetyData Resources = new(
        Refusals: TrainerTestData.ReverseTask(6, seed: 2),
        HarmfulAnswers: TrainerTestData.ReverseTask(6, seed: 3));

    private static SftTrainerOptions Options => TrainerTestData.Options() with { MaxSteps = 3 };

    private static Dictionary<string, Tensor> Weights(nn.Module model) =>
        model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());

    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    [Fact]
    public void Antidote_prunes_both_lora_factors_and_leaves_the_base_alone()
    {
        using var scope = NewDisposeScope();
        using var model = LoraModel();
        var initial = Weights(model);
        var hooks = TestPlans.Strategies("""{"strategy": ["antidote"], "params": {"antidote": {"dense_ratio": 0.25}}}""", Resources);

        new SftTrainer(model, Options, hooks).Train(Task);

        var report = ((AntidoteTrainingStrategy)hooks[0]).Report!;
        var factors = model.named_parameters().Where(p => LayerParameterNames.IsLoraFactor(p.name)).ToArray();
        Assert.Equal(factors.Length, report.PrunedPerWeight.Count);
        foreach (var (name, factor) in factors)
        {
            // lora_A [4, 16] → 4 per row; lora_B [out, 4] → 1 per row: exactly that many entries are now zero.
            var perRow = WandaPruning.PrunedPerRow(factor.shape[1], 0.25);
            Assert.Equal(perRow * factor.shape[0], report.PrunedPerWeight[name]);
            Assert.True(factor.eq(0).sum().item<long>() >= perRow * factor.shape[0], name);
        }
        foreach (var (name, weight) in model.named_parameters().Where(p => !LayerParameterNames.IsLoraFactor(p.name)))
            Assert.True(Same(initial[name], weight), $"{name} is base and must not change");
    }

    [Fact]
    public void Merge_and_safemerge_with_lambda_zero_remove_the_selected_lora_updates()
    {
        using var scope = NewDisposeScope();
        using var merged = LoraModel();
        new SftTrainer(merged, Options, TestPlans.Strategies("""{"strategy": "merge", "params": {"merge": {"lambda": 0}}}""", Resources)).Train(Task);
        Assert.All(merged.named_parameters().Where(p => LayerParameterNames.IsLoraB(p.name)), p => Assert.Equal(0f, p.parameter.abs().max().item<float>()));

        using var safe = LoraModel();
        var hook = (SafeMergeTrainingStrategy)TestPlans.Strategies(
            """{"strategy": "safemerge", "params": {"safemerge": {"lambda": 0, "threshold": 0.0, "rank": 2, "safety_samples": 3}}}""", Resources)[0];
        new SftTrainer(safe, Options, [hook]).Train(Task);
        Assert.Equal(4 * 3, hook.Decisions.Count);
        Assert.All(hook.Decisions, d => Assert.EndsWith("_proj.weight", d.Weight));
        Assert.All(safe.named_parameters().Where(p => LayerParameterNames.IsLoraB(p.name)), p => Assert.Equal(0f, p.parameter.abs().max().item<float>()));
        // The base weights were made trainable only while the safety gradients were taken.
        Assert.All(safe.named_parameters(), p => Assert.Equal(LayerParameterNames.IsLoraFactor(p.name), p.parameter.requires_grad));
    }

    /// <summary>Decodes ids as "t{id}" words; enough for a refusal predicate in tests.</summary>
    private sealed class WordTokenizer : ITextTokenizer
    {
        public int VocabularySize => TrainerTestData.Vocabulary;
        public int EosTokenId => 2;
        public int PadTokenId => 0;
        public int? BosTokenId => 1;
        public int? SpecialTokenId(string token) => null;
        public IReadOnlyList<int> Encode(string text) => throw new NotSupportedException();
        public string Decode(IEnumerable<int> ids) => string.Join(' ', ids.Select(i => $"t{i}"));
    }

    [Fact]
    public void Locator_runs_on_the_real_decoder_stays_in_bounds_and_restores_the_weights()
    {
        using var scope = NewDisposeScope();
        using var model = DecoderLM.CreateRandom(TinyModels.Llama() with { NumHiddenLayers = 6, VocabSize = TrainerTestData.Vocabulary }, seed: 9);
        var initial = Weights(model);
        // Groups share their last token, so last-token states cluster within a group and the N-M curve sits lower.
        int[][] Prompts(int last, int seed) => Enumerable.Range(0, 4).Select(i => new[] { 1, 4 + (seed + i) % 20, 5 + (seed * 3 + i) % 20, last }).ToArray();

        var location = DecoderSafetyLayers.Locate(model, new WordTokenizer(),
            Prompts(10, 1), Prompts(25, 2), Prompts(12, 3),
            answer => answer.Contains("t7", StringComparison.Ordinal),
            new SafetyLayerLocatorParams(SearchRadius: 1), maxNewTokens: 4);

        Assert.Equal(6, location.Curves.Layers);
        Assert.InRange(location.FirstLayer, 1, 4);
        Assert.InRange(location.LastLayer, location.FirstLayer, 4);
        Assert.InRange(location.Trials.Count, 1, 6);
        Assert.All(location.Trials, t => Assert.InRange(t.Refusals, 0, 4));
        Assert.True(location.Trials.Max(t => t.Refusals) <= location.Trials.Single(t => (t.FirstLayer, t.LastLayer) == (location.FirstLayer, location.LastLayer)).Refusals,
            "the chosen range is a trial with the most refusals among those evaluated with its last layer");
        foreach (var (name, weight) in model.named_parameters()) Assert.True(Same(initial[name], weight), name);
        Assert.Equal(location with { Trials = [], Curves = null! }, SafetyLayerLocation.FromJson(location.ToJson()) with { Trials = [], Curves = null! });
    }
}
