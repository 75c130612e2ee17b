using FineTuneService.Core.Domain;
using FineTuneService.Service.Tests.Infrastructure;
using Xunit.Abstractions;

namespace FineTuneService.Service.Tests.Worker;

/// <summary>
/// Crash recovery with a real worker process: the deployed worker host runs in a child process and is killed with
/// SIGKILL in the middle of a run, so nothing of its shutdown path runs; another worker must take the job over and
/// resume it from its last committed checkpoint.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class WorkerCrashRecoveryTests(PostgresServer server, ITestOutputHelper output)
{
    /// <summary>
    /// Hangfire's redelivery alone brings the job back: the surviving worker's crash-recovery pass runs once at its
    /// start (while the dead worker's heartbeat is still fresh) and then not for an hour, so only the gpu queue's
    /// invisibility timeout can hand it the job. The claim then takes the job over because the heartbeat is stale.
    /// </summary>
    [Fact]
    public async Task A_job_whose_worker_process_is_killed_is_redelivered_by_hangfire_and_resumes_at_its_checkpoint()
    {
        await using var observer = await WorkerHost.StartAsync(server, trains: false);
        var file = await observer.UploadFileAsync(TinyBaseModel.Jsonl(24));
        // 240 steps: far more than the worker can train before the test kills it after its first checkpoint.
        var job = await observer.AddJobAsync(file, epochs: 40);

        var invisibility = TimeSpan.FromSeconds(30);
        var settings = new Dictionary<string, string?> { ["Hangfire:InvisibilityTimeout"] = invisibility.ToString() };
        var cache = Directory.CreateTempSubdirectory("fts-worker-process-").FullName;
        await using (var doomed = WorkerProcess.Start(observer.ConnectionString, cache, settings))
        {
            observer.Enqueue(job.Id);
            await observer.WaitForEventAsync(job.Id, e => e.Message == "Checkpoint created at step 5", doomed, timeoutSeconds: 300);
            doomed.Kill();
            await doomed.WaitForExitAsync(TimeSpan.FromSeconds(30));
            output.WriteLine(doomed.Output);
            var orphaned = await observer.GetJobAsync(job.Id);
            Assert.Equal(JobStatus.Running, orphaned.Status);
            Assert.EndsWith($":{doomed.Id}", orphaned.WorkerId);
        }
        var savedAt = (await observer.CheckpointsAsync(job.Id)).Max(c => c.StepNumber);
        Assert.InRange(savedAt, 5, 235);

        // The survivor counts a heartbeat as stale after 15 s, before the redelivery 24 to 30 s after the kill; its only
        // recovery pass runs now, while the dead worker's heartbeat is younger than that.
        await using var survivor = await WorkerHost.StartAsync(server, database: observer.ConnectionString, settings: new Dictionary<string, string?>
        {
            ["Worker:StaleTimeout"] = "00:00:15",
            ["Worker:RecoveryInterval"] = "01:00:00",
            ["Hangfire:InvisibilityTimeout"] = invisibility.ToString(),
        });

        var done = await survivor.WaitForTerminalAsync(job.Id, timeoutSeconds: 300);
        Assert.True(done.Status == JobStatus.Succeeded, done.Error?.ToJsonString());
        Assert.Equal(2, done.Attempts);
        var events = await survivor.EventsAsync(job.Id);
        var messages = events.Select(e => e.Message).ToList();
        Assert.DoesNotContain(messages, m => m.Contains("stopped responding")); // not the recovery pass: the redelivery
        Assert.Contains(messages, m => m.Contains($"resumed on cpu from checkpoint at step {savedAt} (attempt 2)"));
        // Resumed, not restarted: after the resume, training goes on from the checkpoint's step.
        var resumedAt = events.FindIndex(e => e.Message.Contains("resumed on cpu"));
        var stepsAfter = events.Skip(resumedAt).Where(e => e.Type == "metrics").Select(e => (int)e.Data!["step"]!).ToList();
        Assert.True(stepsAfter[0] > savedAt && stepsAfter[0] <= savedAt + 2, $"first step after resume: {stepsAfter[0]}");
        Assert.Equal(240, stepsAfter[^1]);
    }
}
