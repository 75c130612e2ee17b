using FineTuneService.Datasets;
using FineTuneService.Datasets.Corpus;
using FineTuneService.Datasets.Evaluation;
using FineTuneService.Datasets.Sft;
using FineTuneService.Ml.Evaluation.Judges;
using FineTuneService.Ml.Generation;
using FineTuneService.Ml.Models;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Safety.Strategies.FrozenLayers;

/// <summary>Runs <see cref="SafetyLayerLocator"/> on a <see cref="DecoderLM"/> with tokenized (chat-rendered) prompts.</summary>
public static class DecoderSafetyLayers
{
    /// <summary>File of a base model folder with its located safety layers (<see cref="SafetyLayerLocation"/> JSON).</summary>
    public const string FileName = "safety_layers.json";

    /// <summary>
    /// Locates the safety layers with the shipped prompt sets, rendered with the tokenizer's chat template: normal
    /// prompts are SST-2 and AG News instructions plus Self-Instruct tasks, malicious prompts the harmful prompts the
    /// evaluation catalogue leaves to training (never its held-out share), and the over-rejection test uses
    /// XSTest's safe prompts. Subsets are fixed, so the result depends only on the model.
    /// </summary>
    public static SafetyLayerLocation LocateShipped(DecoderLM model, ITextTokenizer tokenizer, ShippedData data,
        SafetyLayerLocatorParams? options = null, int prompts = 32, int benignPrompts = 50, int maxNewTokens = 24, Action<string>? progress = null)
    {
        var sets = new EvaluationCatalogue(data);
        var encoder = new ChatExampleEncoder(tokenizer);
        int[] Encode(string prompt) => encoder.EncodePrompt([new ChatMessage(ChatMessage.User, prompt)]);
        var normal = sets.Sst2Dev.Take(prompts / 3).Select(p => p.Prompt)
            .Concat(sets.AgNewsTest.Take(prompts / 3).Select(p => p.Prompt))
            .Concat(data.SelfInstruct().Select(r => TaskPrompts.InstructionPrompt(r.Instruction, r.Input)).Take(prompts - 2 * (prompts / 3)))
            .Select(Encode).ToList();
        var malicious = Spread(sets.TrainingHarmful, prompts).Select(p => Encode(p.Prompt)).ToList();
        var benign = Spread(sets.XsTestSafe, benignPrompts).Select(p => Encode(p.Prompt)).ToList();
        var keywords = RefusalKeywords.FromShippedData(data);
        return Locate(model, tokenizer, normal, malicious, benign, keywords.IsRefusal, options, maxNewTokens, progress);
    }

    /// <summary>Every k-th item, so a file ordered by source or category is sampled across all of them.</summary>
    private static IEnumerable<T> Spread<T>(IReadOnlyList<T> items, int count) =>
        items.Where((_, i) => i % Math.Max(1, items.Count / Math.Max(1, count)) == 0).Take(count);

    /// <summary>
    /// Locates the safety layers. Prompts are token ids ending where the assistant answer would start (e.g.
    /// <c>ChatExampleEncoder.EncodePrompt</c>); completions are greedy, batched, at most <paramref name="maxNewTokens"/>
    /// long, decoded with <paramref name="tokenizer"/> for <paramref name="isRefusal"/>.
    /// </summary>
    public static SafetyLayerLocation Locate(
        DecoderLM model,
        ITextTokenizer tokenizer,
        IReadOnlyList<int[]> normalPrompts,
        IReadOnlyList<int[]> maliciousPrompts,
        IReadOnlyList<int[]> benignPrompts,
        Predicate<string> isRefusal,
        SafetyLayerLocatorParams? options = null,
        int maxNewTokens = 24,
        Action<string>? progress = null)
    {
        var generator = new TextGenerator(model);
        var generation = new GenerationOptions { MaxNewTokens = maxNewTokens, PadTokenId = tokenizer.PadTokenId };
        var parameters = model.named_parameters().Select(p => (p.name, p.parameter)).ToArray();
        return new SafetyLayerLocator(options ?? new SafetyLayerLocatorParams()).Locate(
            normalPrompts, maliciousPrompts, benignPrompts,
            prompt => LastTokenHiddenStates(model, prompt),
            parameters,
            prompts => generator.Generate(prompts.Select(p => (IReadOnlyList<int>)p).ToArray(), generation).Select(g => tokenizer.Decode(g.TokenIds)).ToArray(),
            isRefusal,
            progress);
    }

    /// <summary>Last-token output of every decoder layer, [layers, hidden] fp32 (the final layer's is after the final norm).</summary>
    public static Tensor LastTokenHiddenStates(DecoderLM model, int[] prompt)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var ids = tensor(prompt.Select(i => (long)i).ToArray(), device: model.Device).unsqueeze(0);
        using var output = model.Forward(ids, new DecoderForwardOptions { OutputHiddenStates = true, Logits = LogitsMode.None });
        var layers = output.HiddenStates!.Skip(1).Select(h => h[0, -1].to_type(ScalarType.Float32)).ToArray();
        return stack(layers).MoveToOuterDisposeScope();
    }
}
