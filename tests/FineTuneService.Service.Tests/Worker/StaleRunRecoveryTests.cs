using FineTuneService.Core.Domain;
using FineTuneService.Service.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace FineTuneService.Service.Tests.Worker;

/// <summary>Crash recovery of the rows that start over (stand-alone evaluations, hardening runs) once out of attempts.</summary>
[Collection(PostgresCollection.Name)]
public sealed class StaleRunRecoveryTests(PostgresServer server)
{
    [Fact]
    public async Task An_orphaned_evaluation_and_hardening_run_past_the_attempt_limit_fail_with_worker_lost()
    {
        await using var worker = await WorkerHost.StartAsync(server, maxAttempts: 2);
        var silent = DateTime.UtcNow.AddMinutes(-10);
        var evaluation = new SafetyEvaluation
        {
            Id = Ids.Evaluation(), Model = TinyBaseModel.Id, Status = SafetyEvaluationStatus.Running, CreatedAt = silent,
            WorkerId = "dead-host:cpu:1", HeartbeatAt = silent, Attempts = 2,
        };
        var run = new HardeningRun
        {
            Id = Ids.HardeningRun(), BaseModel = TinyBaseModel.Id, Method = "booster", Params = [], Suffix = "hard",
            HardenedModel = TinyBaseModel.Id + "-hard", Status = HardeningRunStatus.Running, CreatedAt = silent,
            WorkerId = "dead-host:cpu:2", HeartbeatAt = silent, Attempts = 2,
        };
        await using (var db = await worker.CreateDbContextAsync())
        {
            db.SafetyEvaluations.Add(evaluation);
            db.HardeningRuns.Add(run);
            await db.SaveChangesAsync();
        }

        var (failedEvaluation, failedRun) = await Eventually.UntilAsync(async () =>
        {
            await using var db = await worker.CreateDbContextAsync();
            return (await db.SafetyEvaluations.AsNoTracking().SingleAsync(e => e.Id == evaluation.Id),
                await db.HardeningRuns.AsNoTracking().SingleAsync(r => r.Id == run.Id));
        }, rows => rows.Item1.Status == SafetyEvaluationStatus.Failed && rows.Item2.Status == HardeningRunStatus.Failed,
            TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(200));

        Assert.Equal("worker_lost", (string)failedEvaluation.Error!["code"]!);
        Assert.Contains("this evaluation (dead-host:cpu:1)", (string)failedEvaluation.Error!["message"]!);
        Assert.Equal("worker_lost", (string)failedRun.Error!["code"]!);
        Assert.Contains("this hardening (dead-host:cpu:2)", (string)failedRun.Error!["message"]!);
        Assert.Contains("started 2 times (limit 2)", (string)failedRun.Error!["message"]!);
        Assert.Null(failedRun.WorkerId);
        Assert.Null(failedEvaluation.WorkerId);
    }
}
