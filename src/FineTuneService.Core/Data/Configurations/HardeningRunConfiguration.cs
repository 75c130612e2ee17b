using FineTuneService.Core.Domain;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace FineTuneService.Core.Data.Configurations;

internal sealed class HardeningRunConfiguration : IEntityTypeConfiguration<HardeningRun>
{
    public void Configure(EntityTypeBuilder<HardeningRun> builder)
    {
        builder.ToTable("hardening_runs");
        builder.HasKey(r => r.Id);
        builder.Property(r => r.Id).HasMaxLength(64);
        builder.Property(r => r.BaseModel).HasMaxLength(128);
        builder.Property(r => r.Method).HasMaxLength(64);
        builder.Property(r => r.Suffix).HasMaxLength(64);
        builder.Property(r => r.HardenedModel).HasMaxLength(128);
        builder.Property(r => r.WorkerId).HasMaxLength(256);
        // One live run per model it produces: a second request for the same model is refused, a failed run may be retried.
        builder.HasIndex(r => r.HardenedModel).IsUnique().HasFilter("\"Status\" <> 'Failed'");
        builder.HasIndex(r => r.CreatedAt);
        builder.HasIndex(r => r.Status);
    }
}

internal sealed class HardeningRunEventConfiguration : IEntityTypeConfiguration<HardeningRunEvent>
{
    public void Configure(EntityTypeBuilder<HardeningRunEvent> builder)
    {
        builder.ToTable("hardening_run_events");
        builder.HasKey(e => e.Id);
        builder.Property(e => e.Id).HasMaxLength(64);
        builder.Property(e => e.RunId).HasMaxLength(64);
        builder.Property(e => e.Sequence).UseIdentityAlwaysColumn();
        builder.HasOne<HardeningRun>().WithMany().HasForeignKey(e => e.RunId).OnDelete(DeleteBehavior.Cascade);
        builder.HasIndex(e => new { e.RunId, e.Sequence });
    }
}
