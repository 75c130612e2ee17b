using FineTuneService.Core.Artifacts;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace FineTuneService.Core.Hosting;

public static class ArtifactHostingExtensions
{
    /// <summary>Registers <see cref="IArtifactStore"/> backed by PostgreSQL chunk rows (needs <see cref="DatabaseHostingExtensions.AddFineTuneDatabase"/>).</summary>
    public static IHostApplicationBuilder AddArtifactStore(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<ArtifactStoreOptions>()
            .BindConfiguration(ArtifactStoreOptions.Section)
            .Validate(o => o.ChunkSize is >= 4096 and <= 64 * 1024 * 1024, "Artifacts:ChunkSize must be between 4 KiB and 64 MiB.")
            .ValidateOnStart();
        builder.Services.AddSingleton<IArtifactStore, PostgresArtifactStore>();
        return builder;
    }
}
