using FineTuneService.Datasets.Corpus;
using FineTuneService.Datasets.Sft;
using FineTuneService.Ml.Safety.Strategies;
using FineTuneService.Ml.Safety.Strategies.FrozenLayers;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FineTuneService.Worker.Training;

/// <summary>
/// The shipped safety data sets (<see cref="SafetyDataSets"/>), read once from the data folder; the first
/// <see cref="WorkerOptions.SafetyExamples"/> rows of each are used, tokenized per job with the model's chat template.
/// </summary>
public sealed class SafetyData(IOptions<WorkerOptions> options, ILogger<SafetyData> logger)
{
    private readonly Lazy<SafetyDataSets> _sets = new(() => Load(options.Value.SafetyExamples, logger));

    public SafetyResources Resources(ChatExampleEncoder encoder, int maxLength, SafetyLayerLocation? layers) =>
        _sets.Value.Resources(encoder, maxLength, layers);

    private static SafetyDataSets Load(int count, ILogger logger)
    {
        try
        {
            return SafetyDataSets.FromShippedData(new ShippedData(), count);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            // Strategies that need these sets then fail their jobs with a clear message.
            logger.LogWarning("Safety data sets are missing ({Message}); strategies that need them are unavailable", e.Message);
            return new SafetyDataSets([], []);
        }
    }
}
