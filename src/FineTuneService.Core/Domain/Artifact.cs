namespace FineTuneService.Core.Domain;

/// <summary>Content-addressed blob metadata; the bytes are in <see cref="ArtifactChunk"/> rows.</summary>
public sealed class Artifact
{
    /// <summary>Lowercase hex SHA-256 of the content.</summary>
    public required string Sha256 { get; init; }
    public long Length { get; init; }
    public int ChunkCount { get; init; }
    public string ContentType { get; init; } = "application/octet-stream";
    /// <summary>When the content was last stored: storing existing content again refreshes it (see <c>ArtifactRetentionJob</c>).</summary>
    public DateTime CreatedAt { get; init; }
}

public sealed class ArtifactChunk
{
    public required string Sha256 { get; init; }
    public int Index { get; init; }
    public required byte[] Data { get; init; }
}
