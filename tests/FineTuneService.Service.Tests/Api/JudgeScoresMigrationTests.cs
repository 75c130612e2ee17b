using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Service.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace FineTuneService.Service.Tests.Api;

/// <summary>
/// Rows written while each judge had its own score column read back as a map keyed by judge name after the migration
/// (unmeasured judges left out), a judge with no column round-trips in the map, stored judge kinds become registered
/// judge names, and Down restores both.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class JudgeScoresMigrationTests(PostgresServer server)
{
    private const string Before = "20261202023233_TypedJobContracts";

    [Fact]
    public async Task Per_judge_columns_and_judge_kinds_read_back_by_judge_name()
    {
        var options = new DbContextOptionsBuilder<FineTuneDbContext>().UseNpgsql(await server.CreateDatabaseAsync()).Options;
        await using var db = new FineTuneDbContext(options);
        var migrator = db.GetService<IMigrator>();
        await migrator.MigrateAsync(Before);
        await db.Database.ExecuteSqlRawAsync("""
            INSERT INTO tenants ("Id", "Name", "CreatedAt") VALUES ('tenant-j', 'j', now());
            INSERT INTO fine_tuning_jobs ("Id", "TenantId", "Model", "TrainingFileId", "Status", "Control", "Hyperparameters", "Method", "Safety", "Seed", "CreatedAt", "Attempts", "Review") VALUES
              ('ftjob-judged', 'tenant-j', 'm', 'file-a', 'Succeeded', 'None', '{{}}', '{{"type": "supervised"}}', '{{}}', 1, now(), 1, 'NotRequired');
            INSERT INTO safety_reports ("Id", "JobId", "Stage", "Sequence", "Judge", "HarmfulScore", "ClassifierHarmfulScore", "KeywordHarmfulScore", "ExternalHarmfulScore", "Report", "CreatedAt") VALUES
              ('00000000-0000-0000-0000-000000000001', 'ftjob-judged', 'base', 0, 'classifier', 12.5, 12.5, 80, NULL, '{{}}', now()),
              ('00000000-0000-0000-0000-000000000002', 'ftjob-judged', 'after_training', 1, 'external:guard', 30, 25, 90, 30, '{{}}', now());
            INSERT INTO base_model_safety_scores ("Id", "BaseModelId", "ArtifactSha256", "ConfigFingerprint", "Judge", "HarmfulScore", "ClassifierHarmfulScore", "KeywordHarmfulScore", "ExternalHarmfulScore", "Report", "CreatedAt") VALUES
              ('00000000-0000-0000-0000-000000000003', 'm', 'sha', 'fp', 'classifier', NULL, NULL, 70, NULL, '{{}}', now());
            INSERT INTO safety_evaluations ("Id", "TenantId", "Model", "Judge", "Status", "CreatedAt", "Attempts", "Options") VALUES
              ('seval-k', 'tenant-j', 'm', 'Keyword', 'Succeeded', now(), 1, '{{"include": ["harmful_score"]}}');
            """);

        await migrator.MigrateAsync();

        db.ChangeTracker.Clear();
        var reports = await db.SafetyReports.AsNoTracking().OrderBy(r => r.Sequence).Select(r => r.JudgeScores).ToListAsync();
        Assert.Equal(new Dictionary<string, double> { ["classifier"] = 12.5, ["keyword"] = 80 }, reports[0].Scores);
        Assert.Equal(new Dictionary<string, double> { ["classifier"] = 25, ["external"] = 30, ["keyword"] = 90 }, reports[1].Scores);
        var cached = await db.BaseModelSafetyScores.AsNoTracking().SingleAsync();
        Assert.Null(cached.JudgeScores.Of("classifier"));
        Assert.Equal(70, cached.JudgeScores.Of("keyword"));

        // A judge that never had a column is one more entry of the map.
        db.BaseModelSafetyScores.Add(new BaseModelSafetyScore
        {
            BaseModelId = "m", ArtifactSha256 = "sha", ConfigFingerprint = "fp-2", Judge = "length",
            JudgeScores = new JudgeHarmfulScores(new Dictionary<string, double> { ["length"] = 40, ["keyword"] = 75 }),
            Report = [],
        });
        await db.SaveChangesAsync();
        db.ChangeTracker.Clear();
        var added = await db.BaseModelSafetyScores.AsNoTracking().SingleAsync(s => s.ConfigFingerprint == "fp-2");
        Assert.Equal(40, added.JudgeScores.Of("length"));

        // The stored judge is its registered name now, the seeded global policy's too.
        Assert.Equal("classifier", (await db.SafetyPolicies.AsNoTracking().SingleAsync(p => p.TenantId == null)).Judge);
        Assert.Equal("keyword", (await db.SafetyEvaluations.AsNoTracking().SingleAsync(e => e.Id == "seval-k")).Judge);

        // And back: the columns hold the scores again.
        await migrator.MigrateAsync(Before);
        var external = await db.Database.SqlQueryRaw<double?>(
            """SELECT "ExternalHarmfulScore" AS "Value" FROM safety_reports ORDER BY "Sequence" """).ToListAsync();
        Assert.Equal([null, 30], external);
        var judge = await db.Database.SqlQueryRaw<string>("""SELECT "Judge" AS "Value" FROM safety_evaluations""").SingleAsync();
        Assert.Equal("Keyword", judge);
    }
}
