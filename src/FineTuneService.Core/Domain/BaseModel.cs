using System.Text.Json.Nodes;

namespace FineTuneService.Core.Domain;

/// <summary>
/// A base model tenants can fine-tune (OpenAI "model" owned by the system). Its Hugging Face folder is stored as a
/// tar bundle in the artifact store; workers fetch it by hash into their local cache.
/// </summary>
public sealed class BaseModel
{
    /// <summary>Model id as clients send it, e.g. "safetune-tiny".</summary>
    public required string Id { get; init; }
    /// <summary>SHA-256 of the tar bundle of the model folder (see <see cref="Models.ModelBundle"/>).</summary>
    public required string ArtifactSha256 { get; set; }
    /// <summary>The folder's config.json.</summary>
    public required JsonObject Config { get; set; }
    public DateTime CreatedAt { get; init; }
    public DateTime UpdatedAt { get; set; }
}
