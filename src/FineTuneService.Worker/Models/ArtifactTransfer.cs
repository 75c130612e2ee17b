using System.Security.Cryptography;
using FineTuneService.Core.Artifacts;
using FineTuneService.Core.Models;
using FineTuneService.Datasets;
using FineTuneService.Datasets.Jsonl;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Polly;

namespace FineTuneService.Worker.Models;

/// <summary>
/// Moves folders between the worker's disk and the artifact store as <see cref="ModelBundle"/> tars. Uploads are
/// staged in a local file so a transient database fault can retry them from the start (Polly pipeline
/// <see cref="PipelineKey"/>); downloads are checked against the hash they were asked for.
/// </summary>
public sealed class ArtifactTransfer(
    IArtifactStore store,
    [FromKeyedServices(ArtifactTransfer.PipelineKey)] ResiliencePipeline retry)
{
    public const string PipelineKey = "artifact-transfer";

    /// <summary>Packs <paramref name="folder"/> and stores it; returns the bundle's SHA-256.</summary>
    public async Task<string> UploadFolderAsync(string folder, CancellationToken cancellationToken)
    {
        var staged = Path.Combine(Path.GetTempPath(), $"fts-upload-{Guid.NewGuid():N}.tar");
        try
        {
            await using (var file = File.Create(staged)) await ModelBundle.PackAsync(folder, file, cancellationToken);
            var stored = await retry.ExecuteAsync(async token =>
            {
                await using var read = File.OpenRead(staged);
                return await store.PutAsync(read, "application/x-tar", token);
            }, cancellationToken);
            return stored.Sha256;
        }
        finally
        {
            File.Delete(staged);
        }
    }

    /// <summary>Stores <paramref name="content"/> (a small file, e.g. a job's metrics CSV); returns its SHA-256.</summary>
    public async Task<string> UploadAsync(byte[] content, string contentType, CancellationToken cancellationToken) =>
        (await retry.ExecuteAsync(async token => await store.PutAsync(new MemoryStream(content, writable: false), contentType, token),
            cancellationToken)).Sha256;

    /// <summary>
    /// Unpacks bundle <paramref name="sha256"/> into <paramref name="folder"/> (created), verifying the content hash.
    /// </summary>
    public async Task DownloadFolderAsync(string sha256, string folder, CancellationToken cancellationToken) =>
        await retry.ExecuteAsync(async token =>
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
            await using var source = await store.OpenReadAsync(sha256, token)
                ?? throw new InvalidDataException($"Artifact {sha256} does not exist.");
            using var hash = SHA256.Create();
            await using (var hashing = new CryptoStream(source, hash, CryptoStreamMode.Read, leaveOpen: true))
            {
                await ModelBundle.UnpackAsync(hashing, folder, token);
                await hashing.CopyToAsync(Stream.Null, token); // tar end padding counts towards the hash too
            }
            var actual = Convert.ToHexStringLower(hash.Hash!);
            if (actual != sha256)
                throw new InvalidDataException($"Artifact {sha256} read back with hash {actual}; refusing corrupted content.");
        }, cancellationToken);

    /// <summary>Reads artifact <paramref name="sha256"/> with <paramref name="read"/>; a transient fault restarts the read.</summary>
    public async Task<T> ReadAsync<T>(string sha256, Func<Stream, CancellationToken, Task<T>> read, CancellationToken cancellationToken) =>
        await retry.ExecuteAsync(async token =>
        {
            await using var source = await store.OpenReadAsync(sha256, token)
                ?? throw new InvalidDataException($"Artifact {sha256} does not exist.");
            return await read(source, token);
        }, cancellationToken);

    /// <summary>The chat examples of an uploaded JSONL file (a malformed row throws <see cref="InvalidDataException"/> with its line).</summary>
    public Task<List<ChatExample>> ReadChatExamplesAsync(string sha256, CancellationToken cancellationToken) =>
        ReadAsync(sha256, (stream, token) => ChatJsonl.ReadAsync(stream, token).ToListAsync(token).AsTask(), cancellationToken);

    public Task<List<PreferenceExample>> ReadPreferenceExamplesAsync(string sha256, CancellationToken cancellationToken) =>
        ReadAsync(sha256, (stream, _) => Task.FromResult(PreferenceJsonl.Read(stream).ToList()), cancellationToken);

    /// <summary>Faults worth another try: dropped connections, timeouts, server restarts.</summary>
    internal static void Configure(ResiliencePipelineBuilder builder) => builder.AddRetry(new Polly.Retry.RetryStrategyOptions
    {
        ShouldHandle = new PredicateBuilder()
            .Handle<NpgsqlException>(e => e.IsTransient)
            .Handle<TimeoutException>()
            .Handle<IOException>(e => e is not (FileNotFoundException or DirectoryNotFoundException)),
        MaxRetryAttempts = 4,
        BackoffType = DelayBackoffType.Exponential,
        Delay = TimeSpan.FromMilliseconds(500),
        UseJitter = true,
    });
}
