using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using FineTuneService.Api.Contracts;
using FineTuneService.Api.Errors;
using FineTuneService.Contracts.Safety;

namespace FineTuneService.Api.Jobs;

/// <summary>The validated, normalised parts of a job request.</summary>
internal sealed record JobSettings(JsonObject Hyperparameters, JsonObject Method, SafetyPlan Safety, string? Suffix, long Seed, JsonObject? Metadata);

/// <summary>
/// Checks a create-job request field by field; every problem names its <c>param</c> as OpenAI does. Rules that
/// depend on the model (e.g. frozen layers within its layer count) are checked by the endpoint once the model is known,
/// with the same <see cref="SafetyPlan.Validate"/> the worker runs.
/// </summary>
internal static partial class JobRequestValidator
{
    private static readonly (string Name, bool Integer, double Min, double Max)[] HyperparameterRules =
    [
        ("n_epochs", true, 1, 50),
        ("batch_size", true, 1, 256),
        ("learning_rate_multiplier", false, 1e-6, 100),
    ];

    public static JobSettings Validate(CreateFineTuningJobRequest request)
    {
        if (string.IsNullOrWhiteSpace(request.Model)) throw ApiException.InvalidRequest("Missing required parameter: 'model'.", "model");
        if (string.IsNullOrWhiteSpace(request.TrainingFile))
            throw ApiException.InvalidRequest("Missing required parameter: 'training_file'.", "training_file");
        if (request.Integrations is { Count: > 0 })
            throw ApiException.InvalidRequest("Integrations are not supported by this service.", "integrations");

        var hyperparameters = Hyperparameters(request);
        var supervised = new JsonObject { ["hyperparameters"] = hyperparameters.DeepClone() };
        if (Adapter(request.Method?["supervised"]?["adapter"]) is { } adapter) supervised["adapter"] = adapter;
        return new JobSettings(
            hyperparameters,
            new JsonObject { ["type"] = "supervised", ["supervised"] = supervised },
            SafetyPlan.FromRequest(request.Safety),
            Suffix(request.Suffix),
            Seed(request.Seed),
            Metadata(request.Metadata));
    }

    private static JsonObject Hyperparameters(CreateFineTuningJobRequest request)
    {
        JsonObject? fromMethod = null;
        if (request.Method is { } method)
        {
            var type = method["type"]?.GetValueKind() == JsonValueKind.String ? method["type"]!.GetValue<string>() : null;
            if (type != "supervised")
                throw ApiException.InvalidRequest("Only method.type 'supervised' is supported.", "method.type");
            fromMethod = method["supervised"]?["hyperparameters"] as JsonObject;
        }
        if (fromMethod is not null && request.Hyperparameters is not null)
            throw ApiException.InvalidRequest(
                "Give hyperparameters either at the top level or in method.supervised.hyperparameters, not both.", "hyperparameters");

        var given = fromMethod ?? request.Hyperparameters ?? [];
        var param = fromMethod is not null ? "method.supervised.hyperparameters" : "hyperparameters";
        foreach (var (name, _) in given)
            if (HyperparameterRules.All(rule => rule.Name != name))
                throw ApiException.InvalidRequest($"Unknown hyperparameter '{name}'.", $"{param}.{name}");

        var result = new JsonObject();
        foreach (var (name, integer, min, max) in HyperparameterRules)
            result[name] = Hyperparameter(given[name], $"{param}.{name}", integer, min, max);
        return result;
    }

    private static JsonNode Hyperparameter(JsonNode? value, string param, bool integer, double min, double max)
    {
        if (value?.GetValueKind() is null or JsonValueKind.Null
            || (value.GetValueKind() == JsonValueKind.String && value.GetValue<string>() == "auto"))
            return "auto";
        var number = Number(value, param, integer, min, max, orAuto: true);
        return integer ? JsonValue.Create((long)number) : JsonValue.Create(number);
    }

    /// <summary>A number within [min, max] (an integer when asked), or a 400 naming <paramref name="param"/>.</summary>
    private static double Number(JsonNode value, string param, bool integer, double min, double max, bool orAuto)
    {
        var alternative = orAuto ? " or \"auto\"" : "";
        if (value.GetValueKind() != JsonValueKind.Number)
            throw ApiException.InvalidRequest($"{param} must be a number{alternative}.", param);
        var number = value.GetValue<double>();
        if (integer && number != Math.Floor(number))
            throw ApiException.InvalidRequest($"{param} must be an integer{alternative}.", param);
        if (number < min || number > max)
            throw ApiException.InvalidRequest($"{param} must be between {min} and {max}{(orAuto ? ", or \"auto\"" : "")}.", param);
        return number;
    }

    /// <summary>Projection names a LoRA adapter may wrap (Llama/Qwen2 module names, as PEFT's target_modules).</summary>
    public static readonly string[] LoraTargetModules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

    /// <summary>
    /// Extension <c>method.supervised.adapter</c>: <c>{"type": "lora", "rank", "alpha", "dropout", "target_modules"}</c>
    /// trains a LoRA adapter (merged into the saved weights) instead of every weight; absent or "full" is a full fine-tune.
    /// </summary>
    private static JsonObject? Adapter(JsonNode? node)
    {
        const string param = "method.supervised.adapter";
        if (node is null) return null;
        if (node is not JsonObject adapter) throw ApiException.InvalidRequest($"{param} must be an object.", param);
        foreach (var (key, _) in adapter)
            if (key is not ("type" or "rank" or "alpha" or "dropout" or "target_modules"))
                throw ApiException.InvalidRequest($"Unknown adapter setting '{key}'.", $"{param}.{key}");

        var type = adapter["type"] is null ? "lora" : adapter["type"]!.GetValueKind() == JsonValueKind.String ? adapter["type"]!.GetValue<string>() : "";
        if (type == "full") return null;
        if (type != "lora") throw ApiException.InvalidRequest($"{param}.type must be 'lora' or 'full'.", $"{param}.type");

        var rank = adapter["rank"] is { } r ? Number(r, $"{param}.rank", integer: true, 1, 256, orAuto: false) : 8;
        var targets = adapter["target_modules"] switch
        {
            null => ["q_proj", "v_proj"],
            JsonValue all when all.GetValueKind() == JsonValueKind.String && all.GetValue<string>() == "all-linear" => ["all-linear"],
            JsonArray names when names.Count > 0 && names.All(n => n?.GetValueKind() == JsonValueKind.String && LoraTargetModules.Contains(n.GetValue<string>()))
                => names.Select(n => n!.GetValue<string>()).Distinct().ToList(),
            _ => throw ApiException.InvalidRequest(
                $"{param}.target_modules must be \"all-linear\" or a list of: {string.Join(", ", LoraTargetModules)}.", $"{param}.target_modules"),
        };
        return new JsonObject
        {
            ["type"] = "lora",
            ["rank"] = (long)rank,
            ["alpha"] = adapter["alpha"] is { } alpha ? Number(alpha, $"{param}.alpha", integer: false, 1e-3, 4096, orAuto: false) : 2 * rank,
            ["dropout"] = adapter["dropout"] is { } dropout ? Number(dropout, $"{param}.dropout", integer: false, 0, 0.9, orAuto: false) : 0.05,
            ["target_modules"] = new JsonArray(targets.Select(t => (JsonNode)t).ToArray()),
        };
    }

    /// <summary>OpenAI's seed is a 32-bit signed integer that is not negative; the SDKs read it back as one.</summary>
    private static long Seed(long? seed) => seed switch
    {
        null => RandomNumberGenerator.GetInt32(int.MaxValue),
        < 0 or > int.MaxValue => throw ApiException.InvalidRequest($"seed must be an integer from 0 to {int.MaxValue}.", "seed"),
        _ => seed.Value,
    };

    private static string? Suffix(string? suffix)
    {
        if (suffix is null) return null;
        if (suffix.Length is 0 or > 64 || !SuffixPattern().IsMatch(suffix))
            throw ApiException.InvalidRequest("suffix must be 1 to 64 letters, digits, '-', '_' or '.'.", "suffix");
        return suffix;
    }

    private static JsonObject? Metadata(JsonObject? metadata)
    {
        if (metadata is null) return null;
        if (metadata.Count > 16) throw ApiException.InvalidRequest("metadata can have at most 16 keys.", "metadata");
        foreach (var (key, value) in metadata)
        {
            if (key.Length > 64) throw ApiException.InvalidRequest("metadata keys are at most 64 characters.", "metadata");
            if (value?.GetValueKind() != JsonValueKind.String || value.GetValue<string>().Length > 512)
                throw ApiException.InvalidRequest($"metadata.{key} must be a string of at most 512 characters.", "metadata");
        }
        return metadata.DeepClone().AsObject();
    }

    [GeneratedRegex("^[A-Za-z0-9._-]+$")]
    private static partial Regex SuffixPattern();
}
