using FineTuneService.Datasets;
using FineTuneService.Datasets.Corpus;
using FineTuneService.Datasets.Sft;
using FineTuneService.Ml.Safety.Strategies.FrozenLayers;

namespace FineTuneService.Ml.Safety.Strategies;

/// <summary>
/// The chat sets safety strategies need, from the shipped data folder (<see cref="ShippedData"/>): harmful instructions
/// with refusals (Safety-Tuned LLaMAs; projected_gradients, safemerge) and harmful prompts with harmful answers
/// (BeaverTails unsafe subset; antidote's realignment set). The first <c>count</c> rows of each are used.
/// </summary>
public sealed record SafetyDataSets(IReadOnlyList<ChatExample> Refusals, IReadOnlyList<ChatExample> Harmful)
{
    public static SafetyDataSets FromShippedData(ShippedData data, int count) => new(
        data.SafetyTunedRefusals().Take(count)
            .Select((r, i) => Chat(BootstrapCorpus.InstructionPrompt(r.Instruction, r.Input), r.Output, i)).ToList(),
        data.BeaverTailsUnsafe().Take(count).Select((r, i) => Chat(r.Prompt, r.Response, i)).ToList());

    /// <summary>The sets tokenized with the model's chat template, plus the base model's located safety layers.</summary>
    public SafetyResources Resources(ChatExampleEncoder encoder, int maxLength, SafetyLayerLocation? layers) => new(
        SafetyExamples: Refusals.Select(e => encoder.Encode(e, maxLength)).ToList(),
        RealignmentExamples: Harmful.Select(e => encoder.Encode(e, maxLength)).ToList(),
        SafetyLayers: layers);

    private static ChatExample Chat(string prompt, string answer, int index) =>
        new([new ChatMessage(ChatMessage.User, prompt), new ChatMessage(ChatMessage.Assistant, answer)], index + 1);
}
