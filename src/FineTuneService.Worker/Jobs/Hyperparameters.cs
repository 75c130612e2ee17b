using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace FineTuneService.Worker.Jobs;

/// <summary>The job's hyperparameters with every "auto" replaced by a value.</summary>
public sealed record ResolvedHyperparameters(int Epochs, int BatchSize, double LearningRateMultiplier)
{
    /// <summary>The OpenAI wire shape, recorded on the job once training starts.</summary>
    public JsonObject ToJson() => new()
    {
        ["n_epochs"] = Epochs,
        ["batch_size"] = BatchSize,
        ["learning_rate_multiplier"] = LearningRateMultiplier,
    };

    /// <summary>
    /// Resolves "auto" (or a missing key) from the number of training examples, deterministically and in the spirit of
    /// OpenAI's documented defaults: about 100 to 25,000 examples seen in total (3 epochs when that fits), a batch of
    /// about 0.2% of the data rounded down to a power of two (1 to 256), and a learning-rate multiplier of 0.05, 0.1 or
    /// 0.2 that grows with the batch size. Explicit numbers are kept as given.
    /// </summary>
    public static ResolvedHyperparameters Resolve(JsonObject requested, int exampleCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(exampleCount, 1);

        var epochs = Number(requested, "n_epochs") is { } e ? (int)e : AutoEpochs(exampleCount);
        var batchSize = Number(requested, "batch_size") is { } b ? (int)b : AutoBatchSize(exampleCount);
        var multiplier = Number(requested, "learning_rate_multiplier") ?? AutoLearningRateMultiplier(batchSize);
        if (epochs < 1) throw new JobFailureException("invalid_hyperparameters", "n_epochs must be at least 1.", "hyperparameters.n_epochs");
        if (batchSize < 1) throw new JobFailureException("invalid_hyperparameters", "batch_size must be at least 1.", "hyperparameters.batch_size");
        if (multiplier <= 0)
            throw new JobFailureException("invalid_hyperparameters", "learning_rate_multiplier must be positive.", "hyperparameters.learning_rate_multiplier");
        return new ResolvedHyperparameters(epochs, batchSize, multiplier);
    }

    private const int MinExamplesSeen = 100;
    private const int MaxExamplesSeen = 25_000;
    private const int DefaultEpochs = 3;

    private static int AutoEpochs(int examples) => (examples * DefaultEpochs) switch
    {
        < MinExamplesSeen => Math.Min(25, (MinExamplesSeen + examples - 1) / examples),
        > MaxExamplesSeen => Math.Max(1, MaxExamplesSeen / examples),
        _ => DefaultEpochs,
    };

    private static int AutoBatchSize(int examples)
    {
        var target = Math.Clamp(examples / 500, 1, 256);
        return 1 << (int)Math.Log2(target);
    }

    private static double AutoLearningRateMultiplier(int batchSize) => batchSize switch
    {
        <= 2 => 0.05,
        <= 16 => 0.1,
        _ => 0.2,
    };

    /// <summary>The number at <paramref name="key"/>, or null for "auto" / absent.</summary>
    private static double? Number(JsonObject hyperparameters, string key) => hyperparameters[key] switch
    {
        null => null,
        JsonValue value when value.GetValueKind() == JsonValueKind.Number => double.Parse(value.ToJsonString(), CultureInfo.InvariantCulture),
        JsonValue value when value.GetValueKind() == JsonValueKind.String && value.GetValue<string>() == "auto" => null,
        var other => throw new JobFailureException("invalid_hyperparameters",
            $"hyperparameters.{key} must be a number or \"auto\", got {other.ToJsonString()}.", $"hyperparameters.{key}"),
    };
}
