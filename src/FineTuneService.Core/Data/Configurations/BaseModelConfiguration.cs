using FineTuneService.Core.Domain;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace FineTuneService.Core.Data.Configurations;

internal sealed class BaseModelConfiguration : IEntityTypeConfiguration<BaseModel>
{
    public void Configure(EntityTypeBuilder<BaseModel> builder)
    {
        builder.ToTable("base_models");
        builder.HasKey(m => m.Id);
        builder.Property(m => m.Id).HasMaxLength(128);
        builder.Property(m => m.ArtifactSha256).HasMaxLength(64);
    }
}
