using System.Text.Json.Nodes;
using FineTuneService.Contracts.Jobs;
using FineTuneService.Contracts.Safety;
using Microsoft.EntityFrameworkCore.ChangeTracking;
using Microsoft.EntityFrameworkCore.Storage.ValueConversion;

namespace FineTuneService.Core.Data;

/// <summary>
/// Stores <see cref="JsonObject"/> properties as jsonb text. A converter plus a deep comparer (rather than Npgsql's
/// dynamic JSON) so that in-place edits such as <c>job.Metadata["key"] = "value"</c> are detected and saved.
/// </summary>
internal sealed class JsonObjectConverter() : ValueConverter<JsonObject, string>(
    value => value.ToJsonString((System.Text.Json.JsonSerializerOptions?)null),
    text => JsonNode.Parse(text, null, default)!.AsObject());

internal sealed class JsonObjectComparer() : ValueComparer<JsonObject>(
    (left, right) => JsonNode.DeepEquals(left, right),
    value => value.ToJsonString((System.Text.Json.JsonSerializerOptions?)null).GetHashCode(),
    value => JsonNode.Parse(value.ToJsonString((System.Text.Json.JsonSerializerOptions?)null), null, default)!.AsObject());

/// <summary>
/// Stores a <see cref="SafetyPlan"/> as jsonb in its wire shape, read back through the strategy registry. A converter
/// rather than an EF complex type: the parameters are one record type per registered strategy, which a fixed complex
/// type cannot hold without a property per strategy.
/// </summary>
internal sealed class SafetyPlanConverter() : ValueConverter<SafetyPlan, string>(
    plan => plan.ToJsonString(),
    text => SafetyPlan.FromStored(text, null));

/// <summary>
/// Stores the job's <see cref="JobMethod"/> as jsonb in its wire shape. A converter rather than a complex type: each
/// hyperparameter is a number or "auto", a union a complex type has no column shape for.
/// </summary>
internal sealed class JobMethodConverter() : ValueConverter<JobMethod, string>(
    method => method.ToJsonString(),
    text => JobMethod.FromStored(text));

/// <summary>Stores the job's requested or resolved hyperparameters as jsonb in their wire shape ("auto" or a number each).</summary>
internal sealed class HyperparametersConverter() : ValueConverter<Hyperparameters, string>(
    hyperparameters => hyperparameters.ToJsonString(),
    text => Hyperparameters.FromStored(text));

/// <summary>Stores a safety evaluation's settings as jsonb in the shape the API echoes.</summary>
internal sealed class SafetyEvaluationSettingsConverter() : ValueConverter<SafetyEvaluationSettings, string>(
    settings => settings.ToJsonString(),
    text => SafetyEvaluationSettings.FromStored(text));

/// <summary>Compares immutable contract records by their stored JSON; a snapshot is the record itself.</summary>
internal sealed class ContractComparer<T>() : ValueComparer<T>(
    (left, right) => left == null ? right == null : right != null && ContractText.Of(left) == ContractText.Of(right),
    value => ContractText.Of(value).GetHashCode(),
    value => value) where T : class;

internal static class ContractText
{
    public static string Of(object value) => value switch
    {
        JobMethod method => method.ToJsonString(),
        Hyperparameters hyperparameters => hyperparameters.ToJsonString(),
        SafetyEvaluationSettings settings => settings.ToJsonString(),
        SafetyPlan plan => plan.ToJsonString(),
        _ => throw new ArgumentException($"{value.GetType().Name} is not a stored contract record."),
    };
}

internal sealed class SafetyPlanComparer() : ValueComparer<SafetyPlan>(
    (left, right) => left == null ? right == null : left.Equals(right),
    plan => plan.GetHashCode(),
    plan => plan);

/// <summary>Stores a row's <see cref="Domain.JudgeHarmfulScores"/> as a jsonb map from judge name to HS.</summary>
internal sealed class JudgeHarmfulScoresConverter() : ValueConverter<Domain.JudgeHarmfulScores, string>(
    scores => scores.ToJsonString(),
    text => Domain.JudgeHarmfulScores.FromJson(text));

internal sealed class JudgeHarmfulScoresComparer() : ValueComparer<Domain.JudgeHarmfulScores>(
    (left, right) => left == null ? right == null : left.Equals(right),
    scores => scores.GetHashCode(),
    scores => scores);
