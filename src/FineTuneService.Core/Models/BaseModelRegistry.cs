using System.Security.Cryptography;
using System.Text.Json.Nodes;
using FineTuneService.Contracts.Safety.Hardening;
using FineTuneService.Core.Artifacts;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Jobs;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FineTuneService.Core.Models;

/// <summary>Base model settings: section "Models".</summary>
public sealed record ModelsOptions
{
    public const string Section = "Models";

    /// <summary>Folder whose subfolders (each with a config.json) are the base models; imported at start when set.</summary>
    public string? Directory { get; set; }
}

/// <summary>
/// Imports Hugging Face model folders as base models: bundle, store by hash, upsert the registry row. A folder that
/// ships its <c>safety_layers.json</c> is ready for every strategy at once; for any other, a worker job locates the
/// safety layers (<see cref="ISafetyLayerLocationJob"/>) and <c>frozen_layers</c> jobs without a layer range wait for it.
/// Every registered weights are scored once by a worker (<see cref="IBaseModelScoringJob"/>), so the model is listed
/// with its base scores before any tenant fine-tunes it.
/// </summary>
public sealed class BaseModelRegistry(
    IDbContextFactory<FineTuneDbContext> contexts, IArtifactStore artifacts, IJobScheduler scheduler, ILogger<BaseModelRegistry> logger)
{
    /// <summary>File of a model folder with its located safety layers (written by the locator, read by frozen_layers).</summary>
    public const string SafetyLayersFile = "safety_layers.json";

    /// <summary>Imports every model folder under <paramref name="directory"/> whose bundle hash changed; returns the ids imported.</summary>
    public async Task<IReadOnlyList<string>> ImportDirectoryAsync(string directory, CancellationToken cancellationToken)
    {
        var imported = new List<string>();
        if (!System.IO.Directory.Exists(directory)) return imported;
        foreach (var folder in System.IO.Directory.EnumerateDirectories(directory).Order(StringComparer.Ordinal))
        {
            if (!File.Exists(Path.Combine(folder, "config.json"))) continue;
            if (await ImportAsync(Path.GetFileName(folder), folder, cancellationToken)) imported.Add(Path.GetFileName(folder));
        }
        return imported;
    }

    /// <summary>Registers <paramref name="folder"/> as base model <paramref name="id"/>; false when it is unchanged.</summary>
    public async Task<bool> ImportAsync(string id, string folder, CancellationToken cancellationToken)
    {
        var config = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(folder, "config.json"), cancellationToken))?.AsObject()
            ?? throw new InvalidDataException($"{folder}/config.json is not a JSON object.");

        // Hash first (cheap, nothing stored) so unchanged models cost one read of their files.
        string sha256;
        using (var hashing = new HashingSink())
        {
            await ModelBundle.PackAsync(folder, hashing, cancellationToken);
            sha256 = hashing.Hex();
        }

        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var existing = await db.BaseModels.SingleOrDefaultAsync(m => m.Id == id, cancellationToken);
        if (existing?.ArtifactSha256 == sha256 && await artifacts.GetInfoAsync(sha256, cancellationToken) is not null) return false;

        var bundle = Path.GetTempFileName();
        try
        {
            await using (var file = File.Create(bundle)) await ModelBundle.PackAsync(folder, file, cancellationToken);
            await using var read = File.OpenRead(bundle);
            var stored = await artifacts.PutAsync(read, "application/x-tar", cancellationToken);

            var model = existing ?? db.BaseModels.Add(new BaseModel { Id = id, ArtifactSha256 = stored.Sha256, Config = config }).Entity;
            model.ArtifactSha256 = stored.Sha256;
            model.Config = config;
            // Layers belong to the weights they were located on: new weights are located again unless the folder ships them.
            model.SafetyLayers = await ShippedSafetyLayersAsync(folder, cancellationToken);
            model.SafetyLayersStatus = model.SafetyLayers is null ? SafetyLayersStatus.Pending : SafetyLayersStatus.Ready;
            model.SafetyLayersError = null;
            model.Hardening = await ReadJsonObjectAsync(folder, HardeningRequest.LineageFile, cancellationToken);
            await db.SaveChangesAsync(cancellationToken);
            logger.LogInformation("Base model {Model} registered from {Folder} as artifact {Sha256}; safety layers {Status}",
                id, folder, stored.Sha256, model.SafetyLayers is null ? "to be located by a worker" : $"shipped in {SafetyLayersFile}");
            if (model.SafetyLayersStatus == SafetyLayersStatus.Pending) scheduler.EnqueueSafetyLayerLocation(id);
            // New weights are scored once now rather than at the first tenant job on them (a cached score is kept).
            scheduler.EnqueueBaseModelScoring(id);
            return true;
        }
        finally
        {
            File.Delete(bundle);
        }
    }

    /// <summary>
    /// Queues the safety-layer locator again for every base model still waiting for it: an enqueue lost with a
    /// process that died between the row and the queue is sent at the next start (the job is idempotent).
    /// </summary>
    public async Task<IReadOnlyList<string>> RequestPendingSafetyLayersAsync(IReadOnlyCollection<string> except, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var pending = await db.BaseModels.AsNoTracking().Where(m => m.SafetyLayersStatus == SafetyLayersStatus.Pending && !except.Contains(m.Id))
            .Select(m => m.Id).ToListAsync(cancellationToken);
        foreach (var id in pending) scheduler.EnqueueSafetyLayerLocation(id);
        return pending;
    }

    private static Task<JsonObject?> ShippedSafetyLayersAsync(string folder, CancellationToken cancellationToken) =>
        ReadJsonObjectAsync(folder, SafetyLayersFile, cancellationToken);

    private static async Task<JsonObject?> ReadJsonObjectAsync(string folder, string file, CancellationToken cancellationToken)
    {
        var path = Path.Combine(folder, file);
        if (!File.Exists(path)) return null;
        return JsonNode.Parse(await File.ReadAllTextAsync(path, cancellationToken)) as JsonObject
            ?? throw new InvalidDataException($"{path} is not a JSON object.");
    }

    /// <summary>A write-only stream that only hashes.</summary>
    private sealed class HashingSink : Stream
    {
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private long _length;

        public string Hex() => Convert.ToHexStringLower(_hash.GetHashAndReset());
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => _length;
        public override long Position { get => _length; set => throw new NotSupportedException(); }
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override void Write(ReadOnlySpan<byte> buffer) { _hash.AppendData(buffer); _length += buffer.Length; }
        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) { Write(buffer, offset, count); return Task.CompletedTask; }
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) { Write(buffer.Span); return ValueTask.CompletedTask; }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        protected override void Dispose(bool disposing) { if (disposing) _hash.Dispose(); base.Dispose(disposing); }
    }
}
