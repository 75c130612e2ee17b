using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace FineTuneService.Contracts.Jobs;

/// <summary>
/// A job's hyperparameters as requested: each a number, or null for "auto" (resolved by the worker from the
/// training file when training starts, see <see cref="ResolvedHyperparameters"/>). On the wire null is "auto".
/// </summary>
public sealed record Hyperparameters
{
    [JsonPropertyName("n_epochs")] public int? Epochs { get; init; }
    public int? BatchSize { get; init; }
    public double? LearningRateMultiplier { get; init; }

    public static Hyperparameters Auto { get; } = new();

    private static readonly (string Name, bool Integer, double Min, double Max)[] Bounds =
    [
        ("n_epochs", true, 1, 50),
        ("batch_size", true, 1, 256),
        ("learning_rate_multiplier", false, 1e-6, 100),
    ];

    /// <summary>
    /// Reads <c>{n_epochs, batch_size, learning_rate_multiplier}</c>, each a number or "auto" (or absent); unknown names
    /// and values that are neither are refused with <paramref name="param"/>.name.
    /// </summary>
    public static Hyperparameters FromRequest(JsonObject? given, string param)
    {
        foreach (var (name, _) in given ?? [])
            if (Bounds.All(b => b.Name != name))
                throw new ContractViolation($"{param}.{name}", $"Unknown hyperparameter '{name}'.");
        double? Read(int i)
        {
            var (name, integer, min, max) = Bounds[i];
            var value = given?[name];
            if (value?.GetValueKind() is null or JsonValueKind.Null
                || (value.GetValueKind() == JsonValueKind.String && value.GetValue<string>() == "auto")) return null;
            return RequestNumbers.Read(value, $"{param}.{name}", integer, min, max, orAuto: true);
        }
        return new Hyperparameters { Epochs = (int?)Read(0), BatchSize = (int?)Read(1), LearningRateMultiplier = Read(2) };
    }

    /// <summary>Reads stored hyperparameters (the wire shape); values that no longer pass read as "auto".</summary>
    public static Hyperparameters FromStored(string json)
    {
        try
        {
            return FromRequest(JsonNode.Parse(json) as JsonObject, "hyperparameters");
        }
        catch (ContractViolation)
        {
            return Auto;
        }
    }

    public string ToJsonString() => ToJson().ToJsonString();

    /// <summary>The wire shape: every field, "auto" for unresolved ones.</summary>
    public JsonObject ToJson() => new()
    {
        ["n_epochs"] = Epochs is { } e ? JsonValue.Create(e) : "auto",
        ["batch_size"] = BatchSize is { } b ? JsonValue.Create(b) : "auto",
        ["learning_rate_multiplier"] = LearningRateMultiplier is { } m ? JsonValue.Create(m) : "auto",
    };
}

/// <summary>The job's hyperparameters with every "auto" replaced by a value.</summary>
public sealed record ResolvedHyperparameters(int Epochs, int BatchSize, double LearningRateMultiplier)
{
    /// <summary>As requested hyperparameters, which is how the job records and echoes them once training starts.</summary>
    public Hyperparameters AsRequested() => new() { Epochs = Epochs, BatchSize = BatchSize, LearningRateMultiplier = LearningRateMultiplier };

    /// <summary>
    /// Resolves "auto" from the number of training examples, deterministically and in the spirit of OpenAI's
    /// documented defaults: about 100 to 25,000 examples seen in total (3 epochs when that fits), a batch of about
    /// 0.2% of the data rounded down to a power of two (1 to 256), and a learning-rate multiplier of 0.05, 0.1 or 0.2
    /// that grows with the batch size. Explicit numbers are kept as given.
    /// </summary>
    public static ResolvedHyperparameters Resolve(Hyperparameters requested, int exampleCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(exampleCount, 1);
        var epochs = requested.Epochs ?? AutoEpochs(exampleCount);
        var batchSize = requested.BatchSize ?? AutoBatchSize(exampleCount);
        return new ResolvedHyperparameters(epochs, batchSize, requested.LearningRateMultiplier ?? AutoLearningRateMultiplier(batchSize));
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
}
