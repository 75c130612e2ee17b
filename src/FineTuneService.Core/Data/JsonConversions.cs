using System.Text.Json.Nodes;
using FineTuneService.Contracts.Safety;
using Microsoft.EntityFrameworkCore.ChangeTracking;
using Microsoft.EntityFrameworkCore.Storage.ValueConversion;

namespace FineTuneService.Core.Data;

/// <summary>
/// Stores <see cref="JsonObject"/> properties as jsonb text. A converter plus a deep comparer (rather than Npgsql's
/// dynamic JSON) so that in-place edits such as <c>job.Hyperparameters["n_epochs"] = 3</c> are detected and saved.
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

internal sealed class SafetyPlanComparer() : ValueComparer<SafetyPlan>(
    (left, right) => left == null ? right == null : left.Equals(right),
    plan => plan.GetHashCode(),
    plan => plan);
