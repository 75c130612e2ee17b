using FineTuneService.Core.Domain;
using FineTuneService.Service.Tests.Infrastructure;
using FineTuneService.Service.Tests.Worker;

namespace FineTuneService.Service.Tests.Deployment;

/// <summary>A worker process stopped the way a container is stopped (SIGTERM) loses neither work nor an attempt.</summary>
[Collection(PostgresCollection.Name)]
public sealed class GracefulShutdownTests(PostgresServer server)
{
    [Fact]
    public async Task A_worker_process_stopped_with_sigterm_hands_its_job_back_and_another_worker_resumes_at_the_saved_step()
    {
        // The control host seeds, enqueues and watches; the worker under test is a separate process.
        await using var control = await WorkerHost.StartAsync(server, trains: false);
        var file = await control.UploadFileAsync(TinyBaseModel.Jsonl(24));
        var job = await control.AddJobAsync(file, epochs: 400); // 2,400 steps: far more than run before the stop
        var cache = Directory.CreateTempSubdirectory("fts-worker-process-").FullName;
        try
        {
            await using (var worker = WorkerProcess.Start(control.ConnectionString, cache))
            {
                control.Enqueue(job.Id);
                var checkpoints = await Eventually.UntilAsync(() => control.CheckpointsAsync(job.Id), c => c.Count > 0,
                    TimeSpan.FromSeconds(240), TimeSpan.FromMilliseconds(200));
                Assert.True(checkpoints.Count > 0, $"no checkpoint before the stop. Worker output:\n{worker.Output}");
                var running = await control.GetJobAsync(job.Id);
                Assert.Equal(JobStatus.Running, running.Status);
                Assert.Equal(1, running.Attempts);

                var exitCode = await worker.TerminateAsync(TimeSpan.FromSeconds(90));
                Assert.True(exitCode == 0, $"exit code {exitCode}. Worker output:\n{worker.Output}");
            }

            var handedBack = await control.GetJobAsync(job.Id);
            Assert.Equal(JobStatus.Queued, handedBack.Status);
            Assert.Null(handedBack.WorkerId);
            Assert.Equal(0, handedBack.Attempts); // the attempt was given back
            var savedAt = (await control.CheckpointsAsync(job.Id)).Max(c => c.StepNumber);
            Assert.True(savedAt < 2400);
            Assert.Contains(await control.EventsAsync(job.Id),
                e => e.Message == "The worker is shutting down; the job will resume from its last checkpoint");

            // Another worker takes the re-queued delivery and continues from the checkpoint saved on the way out.
            await using var elsewhere = await WorkerHost.StartAsync(server, database: control.ConnectionString);
            var resumed = await Eventually.UntilAsync(() => control.EventsAsync(job.Id),
                events => events.Any(e => e.Message.Contains("resumed on cpu from checkpoint at step")), TimeSpan.FromSeconds(120));
            Assert.Contains(resumed, e => e.Message == $"Fine-tuning job resumed on cpu from checkpoint at step {savedAt} (attempt 1)");

            await control.SetAsync(job.Id, j => j.Control = JobControl.Cancel);
            var done = await control.WaitForTerminalAsync(job.Id);
            Assert.Equal(JobStatus.Cancelled, done.Status);
            Assert.Equal(1, done.Attempts); // two workers, one attempt
        }
        finally
        {
            Directory.Delete(cache, recursive: true);
        }
    }
}
