using FineTuneService.Contracts.Safety;
using FineTuneService.Core.Domain;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using FineTuneService.Contracts.Judges;

namespace FineTuneService.Core.Data.Configurations;

internal sealed class SafetyPolicyConfiguration : IEntityTypeConfiguration<SafetyPolicy>
{
    /// <summary>Seeded global policy: HS at most 20 %, at most 10 points over the base, refusals on the harmful prompts
    /// at most 25 points below the base's, fail otherwise, classifier judge.
    /// Files are rejected only when more than half their rows are harmful, so the gate (not screening) stops a
    /// dataset with a minority of harmful rows.</summary>
    internal static readonly SafetyPolicy GlobalDefaults = new()
    {
        Id = SafetyPolicy.GlobalId,
        TenantId = null,
        MaxHarmfulScore = 20,
        MaxHarmfulScoreIncrease = 10,
        Action = SafetyGateAction.Fail,
        Judge = SafetyJudges.Classifier.Name,
        UnsafeFileMaxRatio = 0.5,
        OutputGuard = OutputGuardMode.Off,
        MaxRefusalDrop = 25,
        UpdatedBy = "seed",
        UpdatedAt = new DateTime(2026, 11, 22, 0, 0, 0, DateTimeKind.Utc),
    };

    /// <summary>A registered judge name; the column kept the length it had when it held an enum member.</summary>
    internal const int JudgeNameMaxLength = 32;

    public void Configure(EntityTypeBuilder<SafetyPolicy> builder)
    {
        builder.ToTable("safety_policies");
        builder.HasKey(p => p.Id);
        builder.Property(p => p.TenantId).HasMaxLength(64);
        builder.Property(p => p.UpdatedBy).HasMaxLength(200);
        builder.Property(p => p.Judge).HasMaxLength(JudgeNameMaxLength);
        builder.HasOne<Tenant>().WithMany().HasForeignKey(p => p.TenantId).OnDelete(DeleteBehavior.Cascade);
        // At most one row per tenant and exactly one global row (NULLS NOT DISTINCT makes the null tenant unique too).
        builder.HasIndex(p => p.TenantId).IsUnique().AreNullsDistinct(false);
        builder.HasData(GlobalDefaults);
    }
}

internal sealed class SafetyReportConfiguration : IEntityTypeConfiguration<SafetyReport>
{
    public void Configure(EntityTypeBuilder<SafetyReport> builder)
    {
        builder.ToTable("safety_reports");
        builder.HasKey(r => r.Id);
        builder.Property(r => r.JobId).HasMaxLength(64);
        builder.Property(r => r.Stage).HasMaxLength(64);
        builder.Property(r => r.ArtifactSha256).HasMaxLength(64);
        builder.Property(r => r.Judge).HasMaxLength(256);
        builder.Property(r => r.JudgeScores).HasColumnType("jsonb")
            .HasConversion<JudgeHarmfulScoresConverter, JudgeHarmfulScoresComparer>();
        builder.HasOne<FineTuningJob>().WithMany().HasForeignKey(r => r.JobId).OnDelete(DeleteBehavior.Cascade);
        builder.HasIndex(r => new { r.JobId, r.Sequence });
    }
}

internal sealed class BaseModelSafetyScoreConfiguration : IEntityTypeConfiguration<BaseModelSafetyScore>
{
    public void Configure(EntityTypeBuilder<BaseModelSafetyScore> builder)
    {
        builder.ToTable("base_model_safety_scores");
        builder.HasKey(s => s.Id);
        builder.Property(s => s.BaseModelId).HasMaxLength(128);
        builder.Property(s => s.ArtifactSha256).HasMaxLength(64);
        builder.Property(s => s.ConfigFingerprint).HasMaxLength(64);
        builder.Property(s => s.Judge).HasMaxLength(256);
        builder.Property(s => s.JudgeScores).HasColumnType("jsonb")
            .HasConversion<JudgeHarmfulScoresConverter, JudgeHarmfulScoresComparer>();
        builder.HasIndex(s => new { s.BaseModelId, s.ArtifactSha256, s.ConfigFingerprint }).IsUnique();
    }
}

internal sealed class SafetyDecisionConfiguration : IEntityTypeConfiguration<SafetyDecision>
{
    public void Configure(EntityTypeBuilder<SafetyDecision> builder)
    {
        builder.ToTable("safety_decisions");
        builder.HasKey(d => d.Id);
        builder.Property(d => d.JobId).HasMaxLength(64);
        builder.Property(d => d.TenantId).HasMaxLength(64);
        builder.Property(d => d.Actor).HasMaxLength(200);
        builder.Property(d => d.Reason).HasMaxLength(2000);
        builder.HasOne<FineTuningJob>().WithMany().HasForeignKey(d => d.JobId).OnDelete(DeleteBehavior.Cascade);
        builder.HasIndex(d => d.JobId);
        builder.HasIndex(d => d.CreatedAt);
    }
}

internal sealed class SafetyEvaluationConfiguration : IEntityTypeConfiguration<SafetyEvaluation>
{
    public void Configure(EntityTypeBuilder<SafetyEvaluation> builder)
    {
        builder.ToTable("safety_evaluations");
        builder.HasKey(e => e.Id);
        builder.Property(e => e.Id).HasMaxLength(64);
        builder.Property(e => e.TenantId).HasMaxLength(64);
        builder.Property(e => e.Model).HasMaxLength(512);
        builder.Property(e => e.PromptFileId).HasMaxLength(64);
        builder.Property(e => e.Judge).HasMaxLength(SafetyPolicyConfiguration.JudgeNameMaxLength);
        // The column keeps its first name, from when it held the request's options untyped.
        builder.Property(e => e.Settings).HasColumnName("Options").HasColumnType("jsonb")
            .HasConversion<SafetyEvaluationSettingsConverter, ContractComparer<SafetyEvaluationSettings>>();
        builder.Property(e => e.WorkerId).HasMaxLength(256);
        builder.HasOne<Tenant>().WithMany().HasForeignKey(e => e.TenantId).OnDelete(DeleteBehavior.Cascade);
        builder.HasIndex(e => new { e.TenantId, e.CreatedAt });
        builder.HasIndex(e => e.Status);
    }
}
