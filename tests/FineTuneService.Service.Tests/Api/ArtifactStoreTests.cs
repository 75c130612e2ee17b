using System.Security.Cryptography;
using FineTuneService.Core.Artifacts;
using FineTuneService.Core.Data;
using FineTuneService.Core.Models;
using FineTuneService.Service.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace FineTuneService.Service.Tests.Api;

[Collection(PostgresCollection.Name)]
public sealed class ArtifactStoreTests(PostgresServer server)
{
    [Fact]
    public async Task Content_round_trips_across_chunks_and_identical_content_is_stored_once()
    {
        using var host = await CoreHost.StartAsync(server, chunkSize: 4096);
        var store = host.Services.GetRequiredService<IArtifactStore>();
        var bytes = RandomNumberGenerator.GetBytes(3 * 4096 + 17);

        var first = await store.PutAsync(new MemoryStream(bytes), "application/octet-stream", default);
        var second = await store.PutAsync(new MemoryStream(bytes), "application/octet-stream", default);

        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(bytes)), first.Sha256);
        Assert.Equal(first, second);
        Assert.Equal(bytes.Length, first.Length);

        await using (var read = await store.OpenReadAsync(first.Sha256, default))
        {
            var copy = new MemoryStream();
            await read!.CopyToAsync(copy);
            Assert.Equal(bytes, copy.ToArray());
        }

        await using var db = await host.Services.GetRequiredService<IDbContextFactory<FineTuneDbContext>>().CreateDbContextAsync();
        Assert.Equal(1, await db.Artifacts.CountAsync());
        Assert.Equal(4, await db.ArtifactChunks.CountAsync());
        Assert.Null(await store.OpenReadAsync(new string('0', 64), default));
    }

    [Fact]
    public async Task Empty_content_is_a_valid_artifact()
    {
        using var host = await CoreHost.StartAsync(server);
        var store = host.Services.GetRequiredService<IArtifactStore>();
        var info = await store.PutAsync(new MemoryStream(), "text/plain", default);
        await using var read = await store.OpenReadAsync(info.Sha256, default);
        Assert.Equal(-1, read!.ReadByte());
        Assert.Equal(0, info.Length);
    }

    [Fact]
    public async Task A_hardened_model_folder_is_imported_with_its_lineage_and_listed_with_it()
    {
        var models = Directory.CreateTempSubdirectory("fts-models-").FullName;
        try
        {
            var plain = Directory.CreateDirectory(Path.Combine(models, "tiny-plain")).FullName;
            var hardened = Directory.CreateDirectory(Path.Combine(models, "tiny-plain-booster")).FullName;
            foreach (var folder in new[] { plain, hardened })
            {
                await File.WriteAllTextAsync(Path.Combine(folder, "config.json"), """{"hidden_size": 8}""");
                await File.WriteAllBytesAsync(Path.Combine(folder, "model.safetensors"), RandomNumberGenerator.GetBytes(500));
            }
            await File.WriteAllTextAsync(Path.Combine(hardened, FineTuneService.Contracts.Safety.Hardening.HardeningRequest.LineageFile),
                """{"hardened_from": "tiny-plain", "method": "booster", "params": {"lambda": 5, "alpha": 0.1}, "seed": 1}""");

            using var host = await CoreHost.StartAsync(server);
            await host.Services.GetRequiredService<BaseModelRegistry>().ImportDirectoryAsync(models, default);

            await using var db = await host.Services.GetRequiredService<IDbContextFactory<FineTuneDbContext>>().CreateDbContextAsync();
            var listed = (await ModelAccess.ListAsync(db, "tenant-none", default)).ToDictionary(m => m.Id);
            Assert.Null(listed["tiny-plain"].Hardening);
            var lineage = listed["tiny-plain-booster"].Hardening!;
            Assert.Equal("tiny-plain", lineage["hardened_from"]!.GetValue<string>());
            Assert.Equal("booster", lineage["method"]!.GetValue<string>());
            Assert.Equal(5, lineage["params"]!["lambda"]!.GetValue<int>());
        }
        finally
        {
            Directory.Delete(models, recursive: true);
        }
    }

    [Fact]
    public async Task Model_folders_are_bundled_deterministically_and_reimported_only_when_changed()
    {
        var models = Directory.CreateTempSubdirectory("fts-models-").FullName;
        try
        {
            var tiny = Directory.CreateDirectory(Path.Combine(models, "tiny-test")).FullName;
            await File.WriteAllTextAsync(Path.Combine(tiny, "config.json"), """{"hidden_size": 8}""");
            await File.WriteAllBytesAsync(Path.Combine(tiny, "model.safetensors"), RandomNumberGenerator.GetBytes(5000));
            Directory.CreateDirectory(Path.Combine(models, "not-a-model"));

            using var host = await CoreHost.StartAsync(server);
            var registry = host.Services.GetRequiredService<BaseModelRegistry>();
            Assert.Equal(["tiny-test"], await registry.ImportDirectoryAsync(models, default));
            Assert.Empty(await registry.ImportDirectoryAsync(models, default));

            await File.WriteAllTextAsync(Path.Combine(tiny, "config.json"), """{"hidden_size": 16}""");
            Assert.Equal(["tiny-test"], await registry.ImportDirectoryAsync(models, default));

            await using var db = await host.Services.GetRequiredService<IDbContextFactory<FineTuneDbContext>>().CreateDbContextAsync();
            var model = await db.BaseModels.SingleAsync();
            Assert.Equal(16, (int)model.Config["hidden_size"]!);

            var unpacked = Path.Combine(models, "unpacked");
            await using (var bundle = await host.Services.GetRequiredService<IArtifactStore>().OpenReadAsync(model.ArtifactSha256, default))
                await ModelBundle.UnpackAsync(bundle!, unpacked);
            Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(tiny, "model.safetensors")),
                await File.ReadAllBytesAsync(Path.Combine(unpacked, "model.safetensors")));
        }
        finally
        {
            Directory.Delete(models, recursive: true);
        }
    }
}
