using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using FineTuneService.Api.Contracts;
using FineTuneService.Api.Errors;
using FineTuneService.Contracts.Jobs;
using FineTuneService.Contracts.Safety;

namespace FineTuneService.Api.Jobs;

/// <summary>The validated, normalised parts of a job request.</summary>
internal sealed record JobSettings(JobMethod Method, SafetyPlan Safety, string? Suffix, long Seed, JsonObject? Metadata);

/// <summary>
/// Checks a create-job request field by field; every problem names its <c>param</c> as OpenAI does. The method
/// (hyperparameters, LoRA adapter) and the safety plan are read by their contract records (<see cref="JobMethod"/>,
/// <see cref="SafetyPlan"/>), whose violations the error handler answers as 400s. Rules that
/// depend on the model (e.g. frozen layers within its layer count) are checked by the endpoint once the model is known,
/// with the same <see cref="SafetyPlan.Validate"/> the worker runs.
/// </summary>
internal static partial class JobRequestValidator
{
    public static JobSettings Validate(CreateFineTuningJobRequest request)
    {
        if (string.IsNullOrWhiteSpace(request.Model)) throw ApiException.InvalidRequest("Missing required parameter: 'model'.", "model");
        if (string.IsNullOrWhiteSpace(request.TrainingFile))
            throw ApiException.InvalidRequest("Missing required parameter: 'training_file'.", "training_file");
        if (request.Integrations is { Count: > 0 })
            throw ApiException.InvalidRequest("Integrations are not supported by this service.", "integrations");

        return new JobSettings(
            JobMethod.FromRequest(request.Method, request.Hyperparameters),
            SafetyPlan.FromRequest(request.Safety),
            Suffix(request.Suffix),
            Seed(request.Seed),
            Metadata(request.Metadata));
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
