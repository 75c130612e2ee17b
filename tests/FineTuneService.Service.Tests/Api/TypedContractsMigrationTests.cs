using FineTuneService.Contracts.Jobs;
using FineTuneService.Contracts.Safety;
using FineTuneService.Core.Data;
using FineTuneService.Service.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace FineTuneService.Service.Tests.Api;

/// <summary>
/// Rows written while the job's method, hyperparameters and an evaluation's settings were untyped jsonb read back as
/// the typed contract records after the migration, including rows whose method or settings were never written.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class TypedContractsMigrationTests(PostgresServer server)
{
    private const string Before = "20261202021254_JobLineage";

    [Fact]
    public async Task Untyped_rows_read_back_as_contract_records()
    {
        var options = new DbContextOptionsBuilder<FineTuneDbContext>().UseNpgsql(await server.CreateDatabaseAsync()).Options;
        await using var db = new FineTuneDbContext(options);
        var migrator = db.GetService<IMigrator>();
        await migrator.MigrateAsync(Before);
        // Raw SQL takes {0}-style placeholders: the JSON literals' braces are doubled.
        await db.Database.ExecuteSqlRawAsync("""
            INSERT INTO tenants ("Id", "Name", "CreatedAt") VALUES ('tenant-c', 'c', now());
            INSERT INTO fine_tuning_jobs ("Id", "TenantId", "Model", "TrainingFileId", "Status", "Control", "Hyperparameters", "Method", "Safety", "Seed", "CreatedAt", "Attempts", "Review") VALUES
              ('ftjob-lora', 'tenant-c', 'm', 'file-a', 'Succeeded', 'None',
               '{{"n_epochs": 3, "batch_size": 4, "learning_rate_multiplier": 0.1}}',
               '{{"type": "supervised", "supervised": {{"hyperparameters": {{"n_epochs": "auto", "batch_size": 4, "learning_rate_multiplier": "auto"}},
                  "adapter": {{"type": "lora", "rank": 4, "alpha": 8.0, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}}}}}}',
               '{{"strategy": ["antidote"], "params": {{"antidote": {{"dense_ratio": 0.2}}}}}}', 1, now(), 1, 'NotRequired'),
              ('ftjob-nomethod', 'tenant-c', 'm', 'file-a', 'Queued', 'None',
               '{{"n_epochs": 2, "batch_size": "auto", "learning_rate_multiplier": "auto"}}', NULL, '{{}}', 1, now(), 0, 'NotRequired');
            INSERT INTO safety_evaluations ("Id", "TenantId", "Model", "Judge", "Status", "CreatedAt", "Attempts", "Options") VALUES
              ('seval-file', 'tenant-c', 'm', 'Keyword', 'Succeeded', now(), 1,
               '{{"include": ["harmful_score", "over_refusal"], "max_prompts": null, "max_new_tokens": 16, "samples_per_part": 3, "prompt_count": 7, "requested_by": "tenant:tenant-c"}}'),
              ('seval-none', 'tenant-c', 'm', 'Keyword', 'Queued', now(), 0, NULL);
            """);

        await migrator.MigrateAsync();

        db.ChangeTracker.Clear();
        var jobs = await db.Jobs.AsNoTracking().ToDictionaryAsync(j => j.Id);
        var lora = jobs["ftjob-lora"];
        Assert.Equal(new Hyperparameters { Epochs = 3, BatchSize = 4, LearningRateMultiplier = 0.1 }, lora.Hyperparameters);
        Assert.Equal(new Hyperparameters { BatchSize = 4 }, lora.Method.Hyperparameters);
        Assert.Equal(new LoraSettings { Rank = 4, Alpha = 8, Dropout = 0.05, TargetModules = ["q_proj", "v_proj"] }, lora.Method.Adapter);
        Assert.Equal(0.2, lora.Safety.Params<AntidoteParams>()!.DenseRatio);

        var bare = jobs["ftjob-nomethod"];
        Assert.Equal(new Hyperparameters { Epochs = 2 }, bare.Hyperparameters);
        Assert.Equal(new Hyperparameters { Epochs = 2 }, bare.Method.Hyperparameters);
        Assert.Null(bare.Method.Adapter);

        var evaluations = await db.SafetyEvaluations.AsNoTracking().ToDictionaryAsync(e => e.Id, e => e.Settings);
        var file = evaluations["seval-file"];
        Assert.True(file.MeasuresOverRefusal);
        Assert.Equal((16, 3, 7, "tenant:tenant-c"), (file.MaxNewTokens, file.SamplesPerPart, file.PromptCount!.Value, file.RequestedBy));
        Assert.Equal(new SafetyEvaluationSettings(), evaluations["seval-none"]);

        // And back: the columns are nullable again and keep what they hold.
        await migrator.MigrateAsync(Before);
        var method = await db.Database.SqlQueryRaw<string>("""SELECT "Method"::text AS "Value" FROM fine_tuning_jobs WHERE "Id" = 'ftjob-lora'""").SingleAsync();
        Assert.Contains("\"rank\": 4", method);
    }
}
