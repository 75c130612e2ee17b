namespace FineTuneService.Core.Artifacts;

/// <summary>
/// Content-addressed blob storage (datasets, checkpoints, weights, reports). PostgreSQL today; an object store
/// can implement the same interface. Content is streamed in and out, never held whole in memory.
/// </summary>
public interface IArtifactStore
{
    /// <summary>Stores the stream's bytes and returns their lowercase hex SHA-256. Storing existing content is a no-op.</summary>
    Task<ArtifactInfo> PutAsync(Stream content, string contentType, CancellationToken cancellationToken);

    /// <summary>Opens the content for reading, or null when no such artifact exists.</summary>
    Task<Stream?> OpenReadAsync(string sha256, CancellationToken cancellationToken);

    Task<ArtifactInfo?> GetInfoAsync(string sha256, CancellationToken cancellationToken);
}

public sealed record ArtifactInfo(string Sha256, long Length, string ContentType);
