using FineTuneService.Datasets;
using FineTuneService.Datasets.Corpus;
using FineTuneService.Datasets.Evaluation;
using FineTuneService.Datasets.Sft;
using FineTuneService.Ml.Safety.Strategies.FrozenLayers;

namespace FineTuneService.Ml.Safety.Strategies;

/// <summary>
/// The safety data the strategies train against, from the shipped data folder (<see cref="ShippedData"/>): harmful
/// instructions with refusals (Safety-Tuned LLaMAs; projected_gradients, safemerge) and harmful prompts with harmful
/// answers (BeaverTails unsafe subset; antidote's calibration set). The first <c>count</c> rows of each are used.
/// <see cref="Encode"/> gives a job's model its view: the sets in its chat template, plus its located safety layers.
/// </summary>
public sealed record SafetyData(IReadOnlyList<ChatExample> Refusals, IReadOnlyList<ChatExample> HarmfulAnswers)
{
    public static SafetyData Empty { get; } = new([], []);

    public static SafetyData FromShippedData(ShippedData data, int count) => new(
        data.SafetyTunedRefusals().Take(count)
            .Select((r, i) => Chat(TaskPrompts.InstructionPrompt(r.Instruction, r.Input), r.Output, i)).ToList(),
        data.BeaverTailsUnsafe().Take(count).Select((r, i) => Chat(r.Prompt, r.Response, i)).ToList());

    /// <summary>The sets tokenized with the model's chat template, with the base model's located safety layers.</summary>
    public EncodedSafetyData Encode(ChatExampleEncoder encoder, int maxLength, SafetyLayerLocation? layers) => new(
        Refusals.Select(e => encoder.Encode(e, maxLength)).ToList(),
        HarmfulAnswers.Select(e => encoder.Encode(e, maxLength)).ToList(),
        layers);

    private static ChatExample Chat(string prompt, string answer, int index) =>
        new([new ChatMessage(ChatMessage.User, prompt), new ChatMessage(ChatMessage.Assistant, answer)], index + 1);
}

/// <summary><see cref="SafetyData"/> as one model sees it; what a strategy is built with besides its parameters.</summary>
/// <param name="Refusals">Harmful prompts with refusal answers (projected_gradients, safemerge).</param>
/// <param name="HarmfulAnswers">Harmful prompts with harmful answers (antidote's calibration set).</param>
/// <param name="SafetyLayers">Located safety layers of the base model (frozen_layers without an explicit range).</param>
public sealed record EncodedSafetyData(
    IReadOnlyList<TokenizedExample>? Refusals = null,
    IReadOnlyList<TokenizedExample>? HarmfulAnswers = null,
    SafetyLayerLocation? SafetyLayers = null)
{
    /// <summary>The refusal set, or a clear error naming the strategy that needs it.</summary>
    public IReadOnlyList<TokenizedExample> RequireRefusals(string strategy) => Require(Refusals, strategy, "harmful prompts with refusal answers");

    public IReadOnlyList<TokenizedExample> RequireHarmfulAnswers(string strategy) => Require(HarmfulAnswers, strategy, "harmful prompts with harmful answers");

    private static IReadOnlyList<TokenizedExample> Require(IReadOnlyList<TokenizedExample>? examples, string strategy, string what) =>
        examples is { Count: > 0 } ? examples : throw new SafetyStrategyConfigurationException($"{strategy} needs a safety data set ({what}); none was provided.");
}
