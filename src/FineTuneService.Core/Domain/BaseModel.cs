using System.Text.Json.Nodes;

namespace FineTuneService.Core.Domain;

/// <summary>
/// Whether a base model's safety layers (<c>safety_layers.json</c>, used by <c>frozen_layers</c> without a layer
/// range) are known: located by a worker job after import, or shipped in the model folder.
/// </summary>
public enum SafetyLayersStatus { Pending, Ready, Failed }

/// <summary>
/// A base model tenants can fine-tune (OpenAI "model" owned by the system). Its Hugging Face folder is stored as a
/// tar bundle in the artifact store; workers fetch it by hash into their local cache.
/// </summary>
public sealed class BaseModel : ICreatedRow
{
    /// <summary>Model id as clients send it, e.g. "safetune-tiny".</summary>
    public required string Id { get; init; }
    /// <summary>SHA-256 of the tar bundle of the model folder (see <see cref="Models.ModelBundle"/>).</summary>
    public required string ArtifactSha256 { get; set; }
    /// <summary>The folder's config.json.</summary>
    public required JsonObject Config { get; set; }
    public SafetyLayersStatus SafetyLayersStatus { get; set; } = SafetyLayersStatus.Pending;
    /// <summary>The located safety layers (the <c>safety_layers.json</c> document) once <see cref="SafetyLayersStatus"/> is Ready.</summary>
    public JsonObject? SafetyLayers { get; set; }
    /// <summary>Why the locator failed, when <see cref="SafetyLayersStatus"/> is Failed.</summary>
    public string? SafetyLayersError { get; set; }
    /// <summary>
    /// For a hardened base model, its lineage from the folder's <c>hardening.json</c> (hardened_from, method, params,
    /// seed, report); null for a model imported as it was published.
    /// </summary>
    public JsonObject? Hardening { get; set; }
    public DateTime CreatedAt { get; init; }
    public DateTime UpdatedAt { get; set; }
}
