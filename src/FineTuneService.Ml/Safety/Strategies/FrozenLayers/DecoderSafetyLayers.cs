using FineTuneService.Datasets;
using FineTuneService.Ml.Generation;
using FineTuneService.Ml.Models;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Safety.Strategies.FrozenLayers;

/// <summary>Runs <see cref="SafetyLayerLocator"/> on a <see cref="DecoderLM"/> with tokenized (chat-rendered) prompts.</summary>
public static class DecoderSafetyLayers
{
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
        int maxNewTokens = 24)
    {
        var generator = new TextGenerator(model);
        var generation = new GenerationOptions { MaxNewTokens = maxNewTokens, PadTokenId = tokenizer.PadTokenId };
        var parameters = model.named_parameters().Select(p => (p.name, p.parameter)).ToArray();
        return new SafetyLayerLocator(options ?? new SafetyLayerLocatorParams()).Locate(
            normalPrompts, maliciousPrompts, benignPrompts,
            prompt => LastTokenHiddenStates(model, prompt),
            parameters,
            prompts => generator.Generate(prompts.Select(p => (IReadOnlyList<int>)p).ToArray(), generation).Select(g => tokenizer.Decode(g.TokenIds)).ToArray(),
            isRefusal);
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
