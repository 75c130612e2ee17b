using System.Buffers;
using System.Security.Cryptography;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace FineTuneService.Core.Artifacts;

/// <summary>Artifact store settings: section "Artifacts".</summary>
public sealed record ArtifactStoreOptions
{
    public const string Section = "Artifacts";

    /// <summary>Bytes per chunk row; one chunk is the most held in memory while streaming.</summary>
    public int ChunkSize { get; set; } = 1024 * 1024;
}

/// <summary>
/// Content-addressed artifacts in PostgreSQL, split into chunk rows. Upload streams chunks under a staging key while
/// hashing, then one transaction either renames them to the content hash or, when that content already exists,
/// drops them (deduplication). Reads fetch one chunk at a time.
/// </summary>
internal sealed class PostgresArtifactStore(IDbContextFactory<FineTuneDbContext> contexts, IOptions<ArtifactStoreOptions> options)
    : IArtifactStore
{
    /// <summary>Key prefix of an upload in progress; a killed upload leaves such rows behind for <see cref="ArtifactRetentionJob"/>.</summary>
    internal const string StagingPrefix = "staging-";

    public async Task<ArtifactInfo> PutAsync(Stream content, string contentType, CancellationToken cancellationToken)
    {
        var staging = StagingPrefix + Guid.NewGuid().ToString("N");
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        db.Artifacts.Add(new Artifact { Sha256 = staging, ContentType = contentType });
        await db.SaveChangesAsync(cancellationToken);
        try
        {
            var (sha256, length, chunks) = await WriteChunksAsync(db, staging, content, cancellationToken);
            return await CommitAsync(db, staging, new Artifact
            {
                Sha256 = sha256, Length = length, ChunkCount = chunks, ContentType = contentType,
            }, cancellationToken);
        }
        catch
        {
            await db.Artifacts.Where(a => a.Sha256 == staging).ExecuteDeleteAsync(CancellationToken.None);
            throw;
        }
    }

    public async Task<Stream?> OpenReadAsync(string sha256, CancellationToken cancellationToken)
    {
        var info = await GetInfoAsync(sha256, cancellationToken);
        return info is null ? null : new ArtifactReadStream(contexts, info.Sha256, info.Length);
    }

    public async Task<ArtifactInfo?> GetInfoAsync(string sha256, CancellationToken cancellationToken)
    {
        if (sha256.StartsWith(StagingPrefix, StringComparison.Ordinal)) return null;
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        return await db.Artifacts.AsNoTracking()
            .Where(a => a.Sha256 == sha256)
            .Select(a => new ArtifactInfo(a.Sha256, a.Length, a.ContentType))
            .SingleOrDefaultAsync(cancellationToken);
    }

    private async Task<(string Sha256, long Length, int Chunks)> WriteChunksAsync(
        FineTuneDbContext db, string staging, Stream content, CancellationToken cancellationToken)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = ArrayPool<byte>.Shared.Rent(options.Value.ChunkSize);
        try
        {
            long length = 0;
            var index = 0;
            while (true)
            {
                var read = await content.ReadAtLeastAsync(buffer.AsMemory(0, options.Value.ChunkSize), options.Value.ChunkSize,
                    throwOnEndOfStream: false, cancellationToken);
                if (read == 0) break;
                hash.AppendData(buffer, 0, read);
                db.ArtifactChunks.Add(new ArtifactChunk { Sha256 = staging, Index = index++, Data = buffer[..read] });
                await db.SaveChangesAsync(cancellationToken);
                db.ChangeTracker.Clear();
                length += read;
                if (read < options.Value.ChunkSize) break;
            }
            return (Convert.ToHexStringLower(hash.GetHashAndReset()), length, index);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static async Task<ArtifactInfo> CommitAsync(FineTuneDbContext db, string staging, Artifact artifact, CancellationToken cancellationToken)
    {
        var strategy = db.Database.CreateExecutionStrategy();
        var stored = await strategy.ExecuteAsync(async ct =>
        {
            await using var transaction = await db.Database.BeginTransactionAsync(ct);
            // Content that exists already is stored again by refreshing its time: retention spares it until the row
            // that is about to reference it is written (a collection racing this update re-checks the time and keeps it).
            var refreshed = await db.Database.ExecuteSqlAsync(
                $"""UPDATE artifacts SET "CreatedAt" = {artifact.CreatedAt} WHERE "Sha256" = {artifact.Sha256}""", ct);
            // ON CONFLICT makes concurrent uploads of the same content safe: the loser just drops its staging rows.
            var inserted = refreshed == 1 ? 0 : await db.Database.ExecuteSqlAsync($"""
                INSERT INTO artifacts ("Sha256", "Length", "ChunkCount", "ContentType", "CreatedAt")
                VALUES ({artifact.Sha256}, {artifact.Length}, {artifact.ChunkCount}, {artifact.ContentType}, {artifact.CreatedAt})
                ON CONFLICT ("Sha256") DO NOTHING
                """, ct);
            if (inserted == 1)
                await db.Database.ExecuteSqlAsync(
                    $"""UPDATE artifact_chunks SET "Sha256" = {artifact.Sha256} WHERE "Sha256" = {staging}""", ct);
            await db.Database.ExecuteSqlAsync($"""DELETE FROM artifacts WHERE "Sha256" = {staging}""", ct);
            await transaction.CommitAsync(ct);
            return await db.Artifacts.AsNoTracking().SingleAsync(a => a.Sha256 == artifact.Sha256, ct);
        }, cancellationToken);
        return new ArtifactInfo(stored.Sha256, stored.Length, stored.ContentType);
    }
}

/// <summary>Reads an artifact chunk by chunk, each with a short query, so no connection stays open between reads.</summary>
internal sealed class ArtifactReadStream(IDbContextFactory<FineTuneDbContext> contexts, string sha256, long length) : Stream
{
    private byte[] _chunk = [];
    private int _chunkOffset;
    private int _nextIndex;
    private long _position;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => length;
    public override long Position { get => _position; set => throw new NotSupportedException(); }

    public override async ValueTask<int> ReadAsync(Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        if (_chunkOffset == _chunk.Length)
        {
            if (_position >= length) return 0;
            await using var db = await contexts.CreateDbContextAsync(cancellationToken);
            var index = _nextIndex;
            _chunk = await db.ArtifactChunks.AsNoTracking()
                .Where(c => c.Sha256 == sha256 && c.Index == index)
                .Select(c => c.Data)
                .SingleAsync(cancellationToken);
            _chunkOffset = 0;
            _nextIndex++;
        }
        var count = Math.Min(destination.Length, _chunk.Length - _chunkOffset);
        _chunk.AsMemory(_chunkOffset, count).CopyTo(destination);
        _chunkOffset += count;
        _position += count;
        return count;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count).GetAwaiter().GetResult();

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
