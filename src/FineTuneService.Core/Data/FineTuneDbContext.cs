using System.Text.Json.Nodes;
using FineTuneService.Core.Domain;
using Microsoft.AspNetCore.DataProtection.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore;

namespace FineTuneService.Core.Data;

public sealed class FineTuneDbContext(DbContextOptions<FineTuneDbContext> options) : DbContext(options), IDataProtectionKeyContext
{
    public DbSet<Tenant> Tenants => Set<Tenant>();
    public DbSet<ApiKey> ApiKeys => Set<ApiKey>();
    public DbSet<StoredFile> Files => Set<StoredFile>();
    public DbSet<FineTuningJob> Jobs => Set<FineTuningJob>();
    public DbSet<JobEvent> JobEvents => Set<JobEvent>();
    public DbSet<JobCheckpoint> JobCheckpoints => Set<JobCheckpoint>();
    public DbSet<Artifact> Artifacts => Set<Artifact>();
    public DbSet<ArtifactChunk> ArtifactChunks => Set<ArtifactChunk>();
    public DbSet<BaseModel> BaseModels => Set<BaseModel>();
    public DbSet<SafetyPolicy> SafetyPolicies => Set<SafetyPolicy>();
    public DbSet<SafetyReport> SafetyReports => Set<SafetyReport>();
    public DbSet<BaseModelSafetyScore> BaseModelSafetyScores => Set<BaseModelSafetyScore>();
    public DbSet<SafetyDecision> SafetyDecisions => Set<SafetyDecision>();
    public DbSet<SafetyEvaluation> SafetyEvaluations => Set<SafetyEvaluation>();
    public DbSet<HardeningRun> HardeningRuns => Set<HardeningRun>();
    public DbSet<HardeningRunEvent> HardeningRunEvents => Set<HardeningRunEvent>();
    public DbSet<DataProtectionKey> DataProtectionKeys => Set<DataProtectionKey>();
    public DbSet<InferenceEndpoint> InferenceEndpoints => Set<InferenceEndpoint>();
    public DbSet<OutboxMessage> Outbox => Set<OutboxMessage>();

    protected override void OnModelCreating(ModelBuilder modelBuilder) =>
        modelBuilder.ApplyConfigurationsFromAssembly(typeof(FineTuneDbContext).Assembly);

    protected override void ConfigureConventions(ModelConfigurationBuilder configurationBuilder)
    {
        // Enums are stored as their names so rows read well in psql and survive reordering.
        configurationBuilder.Properties<Enum>().HaveConversion<string>().HaveMaxLength(32);
        configurationBuilder.Properties<JsonObject>().HaveColumnType("jsonb").HaveConversion<JsonObjectConverter, JsonObjectComparer>();
    }
}
