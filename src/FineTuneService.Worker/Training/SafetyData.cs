using FineTuneService.Datasets;
using FineTuneService.Datasets.Corpus;
using FineTuneService.Datasets.Sft;
using FineTuneService.Ml.Safety.Strategies;
using FineTuneService.Ml.Safety.Strategies.FrozenLayers;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FineTuneService.Worker.Training;

/// <summary>
/// The data sets safety strategies need, read once from the shipped data folder (<see cref="ShippedData"/>):
/// harmful instructions with refusals (Safety-Tuned LLaMAs; projected_gradients, safemerge) and harmful prompts with
/// harmful answers (BeaverTails unsafe subset; antidote's realignment set). The first
/// <see cref="WorkerOptions.SafetyExamples"/> rows of each are used, tokenized per job with the model's chat template.
/// </summary>
public sealed class SafetyData(IOptions<WorkerOptions> options, ILogger<SafetyData> logger)
{
    private readonly Lazy<(IReadOnlyList<ChatExample> Refusals, IReadOnlyList<ChatExample> Harmful)> _sets =
        new(() => Load(options.Value.SafetyExamples, logger));

    public SafetyResources Resources(ChatExampleEncoder encoder, int maxLength, SafetyLayerLocation? layers)
    {
        var (refusals, harmful) = _sets.Value;
        return new SafetyResources(
            SafetyExamples: refusals.Select(e => encoder.Encode(e, maxLength)).ToList(),
            RealignmentExamples: harmful.Select(e => encoder.Encode(e, maxLength)).ToList(),
            SafetyLayers: layers);
    }

    private static (IReadOnlyList<ChatExample>, IReadOnlyList<ChatExample>) Load(int count, ILogger logger)
    {
        try
        {
            var data = new ShippedData();
            var refusals = data.SafetyTunedRefusals().Take(count)
                .Select((r, i) => Chat(BootstrapCorpus.InstructionPrompt(r.Instruction, r.Input), r.Output, i)).ToList();
            var harmful = data.BeaverTailsUnsafe().Take(count).Select((r, i) => Chat(r.Prompt, r.Response, i)).ToList();
            return (refusals, harmful);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            // Strategies that need these sets then fail their jobs with a clear message.
            logger.LogWarning("Safety data sets are missing ({Message}); strategies that need them are unavailable", e.Message);
            return ([], []);
        }
    }

    private static ChatExample Chat(string prompt, string answer, int index) =>
        new([new ChatMessage(ChatMessage.User, prompt), new ChatMessage(ChatMessage.Assistant, answer)], index + 1);
}
