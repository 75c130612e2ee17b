using FineTuneService.Core.Domain;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace FineTuneService.Core.Data.Configurations;

internal sealed class ArtifactConfiguration : IEntityTypeConfiguration<Artifact>
{
    public void Configure(EntityTypeBuilder<Artifact> builder)
    {
        builder.ToTable("artifacts");
        builder.HasKey(a => a.Sha256);
        builder.Property(a => a.Sha256).HasMaxLength(64);
        builder.Property(a => a.ContentType).HasMaxLength(128);
    }
}

internal sealed class ArtifactChunkConfiguration : IEntityTypeConfiguration<ArtifactChunk>
{
    public void Configure(EntityTypeBuilder<ArtifactChunk> builder)
    {
        builder.ToTable("artifact_chunks");
        builder.HasKey(c => new { c.Sha256, c.Index });
        builder.Property(c => c.Sha256).HasMaxLength(64);
        builder.HasOne<Artifact>().WithMany().HasForeignKey(c => c.Sha256).OnDelete(DeleteBehavior.Cascade);
    }
}
