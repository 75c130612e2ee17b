using FineTuneService.Contracts.Jobs;
using FineTuneService.Core.Domain;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace FineTuneService.Core.Data.Configurations;

internal sealed class FineTuningJobConfiguration : IEntityTypeConfiguration<FineTuningJob>
{
    public void Configure(EntityTypeBuilder<FineTuningJob> builder)
    {
        builder.ToTable("fine_tuning_jobs");
        builder.HasKey(j => j.Id);
        builder.Property(j => j.Id).HasMaxLength(64);
        builder.Property(j => j.TenantId).HasMaxLength(64);
        builder.Property(j => j.Model).HasMaxLength(256);
        builder.Property(j => j.RootModel).HasMaxLength(256);
        builder.Property(j => j.ParentJobId).HasMaxLength(64);
        builder.Property(j => j.TrainingFileId).HasMaxLength(64);
        builder.Property(j => j.ValidationFileId).HasMaxLength(64);
        builder.Property(j => j.Suffix).HasMaxLength(64);
        builder.Property(j => j.FineTunedModel).HasMaxLength(512);
        builder.HasIndex(j => j.FineTunedModel);
        builder.Property(j => j.IdempotencyKey).HasMaxLength(256);
        builder.Property(j => j.WorkerId).HasMaxLength(256);
        builder.Property(j => j.DeviceKind).HasMaxLength(16);
        builder.Property(j => j.ResultArtifactSha256).HasMaxLength(64);
        builder.Property(j => j.AdapterArtifactSha256).HasMaxLength(64);
        builder.Property(j => j.ResultFiles).HasColumnType("text[]");
        builder.Property(j => j.Hyperparameters).HasColumnType("jsonb").HasConversion<HyperparametersConverter, ContractComparer<Hyperparameters>>();
        builder.Property(j => j.Method).HasColumnType("jsonb").HasConversion<JobMethodConverter, ContractComparer<JobMethod>>();
        builder.Property(j => j.Safety).HasColumnType("jsonb").HasConversion<SafetyPlanConverter, SafetyPlanComparer>();
        builder.Property(j => j.Metadata).HasColumnType("jsonb");
        builder.Property(j => j.Error).HasColumnType("jsonb");
        builder.Property(j => j.SafetyScores).HasColumnType("jsonb");
        builder.Ignore(j => j.IsTerminal);
        builder.HasOne<Tenant>().WithMany().HasForeignKey(j => j.TenantId);
        builder.HasIndex(j => new { j.TenantId, j.CreatedAt });
        builder.HasIndex(j => new { j.TenantId, j.IdempotencyKey }).IsUnique().HasFilter("\"IdempotencyKey\" IS NOT NULL");
        builder.HasIndex(j => j.Status);
    }
}

internal sealed class JobEventConfiguration : IEntityTypeConfiguration<JobEvent>
{
    public void Configure(EntityTypeBuilder<JobEvent> builder)
    {
        builder.ToTable("fine_tuning_job_events");
        builder.HasKey(e => e.Id);
        builder.Property(e => e.Id).HasMaxLength(64);
        builder.Property(e => e.JobId).HasMaxLength(64);
        builder.Property(e => e.Type).HasMaxLength(16);
        builder.Property(e => e.Data).HasColumnType("jsonb");
        builder.Property(e => e.Sequence).UseIdentityAlwaysColumn();
        builder.HasOne<FineTuningJob>().WithMany().HasForeignKey(e => e.JobId).OnDelete(DeleteBehavior.Cascade);
        builder.HasIndex(e => new { e.JobId, e.Sequence });
    }
}

internal sealed class JobCheckpointConfiguration : IEntityTypeConfiguration<JobCheckpoint>
{
    public void Configure(EntityTypeBuilder<JobCheckpoint> builder)
    {
        builder.ToTable("fine_tuning_job_checkpoints");
        builder.HasKey(c => c.Id);
        builder.Property(c => c.Id).HasMaxLength(64);
        builder.Property(c => c.JobId).HasMaxLength(64);
        builder.Property(c => c.FineTunedModelCheckpoint).HasMaxLength(512);
        builder.Property(c => c.ResumeStateSha256).HasMaxLength(64);
        builder.Property(c => c.WeightsArtifactSha256).HasMaxLength(64);
        builder.Property(c => c.AdapterArtifactSha256).HasMaxLength(64);
        builder.Ignore(c => c.IsModel);
        builder.HasIndex(c => c.FineTunedModelCheckpoint);
        builder.Property(c => c.Metrics).HasColumnType("jsonb");
        builder.HasOne<FineTuningJob>().WithMany().HasForeignKey(c => c.JobId).OnDelete(DeleteBehavior.Cascade);
        builder.HasIndex(c => new { c.JobId, c.StepNumber }).IsUnique();
    }
}
