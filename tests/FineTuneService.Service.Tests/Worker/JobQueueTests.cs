using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Jobs;
using FineTuneService.Service.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace FineTuneService.Service.Tests.Worker;

/// <summary>Queue positions and estimated starts as three jobs go through one real worker.</summary>
[Collection(PostgresCollection.Name)]
public sealed class JobQueueTests(PostgresServer server)
{
    [Fact]
    public async Task Three_jobs_on_one_worker_stand_at_1_2_3_and_move_up_as_the_worker_picks_them()
    {
        var gate = new TrainingStepGate();
        await using var worker = await WorkerHost.StartAsync(server, services: s => s.ConfigureDbContext<FineTuneDbContext>(o => o.AddInterceptors(gate)));
        var file = await worker.UploadFileAsync(TinyBaseModel.Jsonl(8));
        var jobs = new List<FineTuningJob>();
        for (var i = 0; i < 3; i++) jobs.Add(await worker.AddJobAsync(file, epochs: 2));

        var before = await StandingsAsync(worker, jobs);
        Assert.Equal([1, 2, 3], jobs.Select(j => before[j.Id].Position));
        // Nothing has finished on this pool yet: each job ahead is assumed to take the stated fallback run time.
        Assert.Equal(JobQueue.FallbackRunTime, before[jobs[1].Id].EstimatedStart - before[jobs[0].Id].EstimatedStart);
        Assert.Equal(before[jobs[2].Id].EstimatedStart, before[jobs[1].Id].EstimatedFinish);

        // The worker picks the first and is held after its first step: the other two have moved up.
        gate.Close();
        foreach (var job in jobs) worker.Enqueue(job.Id);
        await gate.WaitUntilHeldAsync(TimeSpan.FromSeconds(120));
        var running = await StandingsAsync(worker, jobs);
        Assert.False(running.ContainsKey(jobs[0].Id));
        Assert.Equal([1, 2], jobs.Skip(1).Select(j => running[j.Id].Position));
        Assert.Contains(await MessagesAsync(worker, jobs[0]), m => m.StartsWith("Picked from the queue by worker", StringComparison.Ordinal));
        Assert.Contains("Moved up to queue position 1: a worker picked a job ahead of it", await MessagesAsync(worker, jobs[1]));
        Assert.Contains("Moved up to queue position 2: a worker picked a job ahead of it", await MessagesAsync(worker, jobs[2]));
        gate.Open();

        foreach (var job in jobs) Assert.Equal(JobStatus.Succeeded, (await worker.WaitForTerminalAsync(job.Id)).Status);
        // The last job moved up twice, then was picked.
        var last = await MessagesAsync(worker, jobs[2]);
        Assert.Contains("Moved up to queue position 1: a worker picked a job ahead of it", last);
        Assert.Contains(last, m => m.StartsWith("Picked from the queue by worker", StringComparison.Ordinal));
        // Finished jobs now give the typical run time; an empty queue stands nowhere.
        Assert.Empty(await StandingsAsync(worker, jobs));
    }

    private static async Task<IReadOnlyDictionary<string, QueueStanding>> StandingsAsync(WorkerHost worker, IEnumerable<FineTuningJob> jobs)
    {
        await using var db = await worker.CreateDbContextAsync();
        var ids = jobs.Select(j => j.Id).ToList();
        var rows = await db.Jobs.AsNoTracking().Where(j => ids.Contains(j.Id)).ToListAsync();
        return await JobQueue.StandingsAsync(db, rows, DateTime.UtcNow, CancellationToken.None);
    }

    private static async Task<List<string>> MessagesAsync(WorkerHost worker, FineTuningJob job) =>
        (await worker.EventsAsync(job.Id)).Select(e => e.Message).ToList();
}
