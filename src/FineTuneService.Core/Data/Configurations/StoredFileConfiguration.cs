using FineTuneService.Core.Domain;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace FineTuneService.Core.Data.Configurations;

internal sealed class StoredFileConfiguration : IEntityTypeConfiguration<StoredFile>
{
    public void Configure(EntityTypeBuilder<StoredFile> builder)
    {
        builder.ToTable("files");
        builder.HasKey(f => f.Id);
        builder.Property(f => f.Id).HasMaxLength(64);
        builder.Property(f => f.TenantId).HasMaxLength(64);
        builder.Property(f => f.Filename).HasMaxLength(512);
        builder.Property(f => f.Purpose).HasMaxLength(64);
        builder.Property(f => f.Sha256).HasMaxLength(64);
        builder.Property(f => f.ValidationReport).HasColumnType("jsonb");
        builder.HasOne<Tenant>().WithMany().HasForeignKey(f => f.TenantId);
        builder.HasIndex(f => new { f.TenantId, f.CreatedAt });
    }
}
