using FineTuneService.Contracts.Jobs;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using FineTuneService.Contracts.Safety;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Models;
using FineTuneService.Service.Tests.Infrastructure;
using FineTuneService.Worker.Jobs;
using Hangfire;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace FineTuneService.Service.Tests.Worker;

/// <summary>The worker end to end: real PostgreSQL, real Hangfire, real TorchSharp training of a tiny model.</summary>
[Collection(PostgresCollection.Name)]
public sealed partial class FineTuneJobRunnerTests(PostgresServer server, ITestOutputHelper output)
{
    [Fact]
    public async Task Queued_job_trains_to_succeeded_with_metrics_checkpoints_and_a_loadable_result()
    {
        await using var worker = await WorkerHost.StartAsync(server);
        var file = await worker.UploadFileAsync(TinyBaseModel.Jsonl(24));
        var job = await worker.AddJobAsync(file, epochs: 2);

        var enqueued = DateTime.UtcNow;
        worker.Enqueue(job.Id);
        var done = await worker.WaitForTerminalAsync(job.Id);

        Assert.Equal(JobStatus.Succeeded, done.Status);
        Assert.Null(done.Error);
        Assert.Equal($"ft:{TinyBaseModel.Id}:{WorkerHost.TenantId}:unit:{job.Id}", done.FineTunedModel);
        Assert.True(done.TrainedTokens > 0);
        Assert.Equal(1, done.Attempts);
        Assert.Null(done.WorkerId);
        // 24 examples, batch 4, 2 epochs; "auto" learning_rate_multiplier resolved and recorded.
        Assert.Equal(new Hyperparameters { Epochs = 2, BatchSize = 4, LearningRateMultiplier = 0.1 }, done.Hyperparameters);

        var events = await worker.EventsAsync(job.Id);
        var messages = events.Select(e => e.Message).ToList();
        Assert.Contains(messages, m => m.StartsWith("Fine-tuning job started", StringComparison.Ordinal));
        Assert.Contains("Validating training file", messages);
        Assert.Contains("Checkpoint created at step 5", messages);
        Assert.Equal("The job has successfully completed", messages[^1]);
        var metrics = events.Where(e => e.Type == "metrics").ToList();
        Assert.NotEmpty(metrics);
        Assert.All(metrics, m =>
        {
            Assert.True((double)m.Data!["train_loss"]! > 0);
            Assert.True((double)m.Data!["tokens_per_second"]! > 0);
            Assert.NotNull(m.Data!["estimated_finish"]);
        });
        Assert.Equal(12, (int)metrics[^1].Data!["step"]!);

        // Resume states every 5 steps, and a checkpoint with model weights at the end of each 6-step epoch.
        var checkpoints = await worker.CheckpointsAsync(job.Id);
        Assert.Equal([5, 6, 10, 12], checkpoints.Select(c => c.StepNumber));
        Assert.Equal([6, 12], checkpoints.Where(c => c.IsModel).Select(c => c.StepNumber));
        Assert.Equal($"{done.FineTunedModel}:ckpt-step-6", checkpoints[1].FineTunedModelCheckpoint);
        Assert.All(checkpoints, c => Assert.NotNull(c.ResumeStateSha256));
        var lastEpoch = checkpoints[^1];
        Assert.InRange((double)lastEpoch.Metrics["train_mean_token_accuracy"]!, 0, 1);
        // Without post-training steps the last epoch's weights are the final model, stored once.
        Assert.Equal(done.ResultArtifactSha256, lastEpoch.WeightsArtifactSha256);
        Assert.Null(done.AdapterArtifactSha256);

        // The result bundle is a Hugging Face folder the engine loads again.
        var folder = Path.Combine(Path.GetTempPath(), $"fts-result-{Guid.NewGuid():N}");
        try
        {
            await using (var bundle = await worker.Services.GetRequiredService<Core.Artifacts.IArtifactStore>()
                             .OpenReadAsync(done.ResultArtifactSha256!, CancellationToken.None))
                await ModelBundle.UnpackAsync(bundle!, folder);
            using var loaded = Ml.Models.HuggingFaceCheckpoint.Load(folder).Model;
            Assert.True(File.Exists(Path.Combine(folder, "tokenizer.json")) || File.Exists(Path.Combine(folder, "vocab.json")));
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }

        output.WriteLine($"start latency (enqueue → claimed): {(done.StartedAt!.Value - enqueued).TotalMilliseconds:0} ms");
        output.WriteLine($"tokens/s (last metrics event): {(double)metrics[^1].Data!["tokens_per_second"]!:0}");
    }

    [Fact]
    public async Task Cancel_stops_training_before_the_next_step()
    {
        await using var worker = await WorkerHost.StartAsync(server);
        var file = await worker.UploadFileAsync(TinyBaseModel.Jsonl(24));
        var job = await worker.AddJobAsync(file, epochs: 200);
        worker.Enqueue(job.Id);

        await worker.WaitForAsync(job.Id, j => j.Status == JobStatus.Running);
        await worker.SetAsync(job.Id, j => j.Control = JobControl.Cancel);
        var done = await worker.WaitForTerminalAsync(job.Id);

        Assert.Equal(JobStatus.Cancelled, done.Status);
        Assert.Equal(JobControl.None, done.Control);
        Assert.Null(done.FineTunedModel);
        var messages = (await worker.EventsAsync(job.Id)).Select(e => e.Message).ToList();
        var requestedAfter = StepIn(messages.Single(m => m.StartsWith("Cancellation requested", StringComparison.Ordinal)));
        var stoppedAt = StepIn(messages.Single(m => m.StartsWith("The job was cancelled at step", StringComparison.Ordinal)));
        Assert.Equal(requestedAfter, stoppedAt);
        Assert.True(stoppedAt < 1200, "the run should have stopped long before its 1200 steps");
    }

    [Fact]
    public async Task Paused_job_resumes_from_its_checkpoint_after_its_worker_dies()
    {
        var gate = new TrainingStepGate();
        await using var worker = await WorkerHost.StartAsync(server, services: s => s.ConfigureDbContext<FineTuneDbContext>(o => o.AddInterceptors(gate)));
        var file = await worker.UploadFileAsync(TinyBaseModel.Jsonl(24));
        var job = await worker.AddJobAsync(file, epochs: 4);
        gate.Close();
        worker.Enqueue(job.Id);

        // Pause while training, held after step 1 whatever the machine's speed: the worker saves a checkpoint at the
        // step it stops after and releases the job.
        await gate.WaitUntilHeldAsync(TimeSpan.FromSeconds(120));
        await worker.SetAsync(job.Id, j => j.Control = JobControl.Pause);
        gate.Open();
        var paused = await worker.WaitForAsync(job.Id, j => j.Status == JobStatus.Paused);
        Assert.Null(paused.WorkerId);
        Assert.Equal(JobControl.None, paused.Control);
        var pausedAt = (await worker.CheckpointsAsync(job.Id)).Max(c => c.StepNumber);
        Assert.Equal(1, pausedAt);

        // Now pretend a worker had resumed it and died: running, a stale heartbeat, a lease nobody renews.
        await worker.SetAsync(job.Id, j =>
        {
            j.Status = JobStatus.Running;
            j.WorkerId = "dead-host:cuda:0:4242";
            j.HeartbeatAt = DateTime.UtcNow.AddHours(-1);
            j.Attempts = 1;
        });

        var done = await worker.WaitForTerminalAsync(job.Id);
        Assert.Equal(JobStatus.Succeeded, done.Status);
        Assert.Equal(2, done.Attempts);
        var events = await worker.EventsAsync(job.Id);
        var messages = events.Select(e => e.Message).ToList();
        Assert.Contains(messages, m => m.Contains("dead-host:cuda:0:4242") && m.Contains($"checkpoint at step {pausedAt}"));
        Assert.Contains(messages, m => m.Contains($"resumed on cpu from checkpoint at step {pausedAt}"));
        // Resumed, not restarted: no step up to the pause point is trained (reported) twice.
        var steps = events.Where(e => e.Type == "metrics").Select(e => (int)e.Data!["step"]!).ToList();
        Assert.Equal(steps.Distinct().Count(), steps.Count);
        Assert.Equal(24, steps[^1]);
    }

    [Fact]
    public async Task Stopping_the_worker_mid_run_saves_a_checkpoint_and_the_next_worker_resumes_from_it()
    {
        string database, jobId;
        int savedAt;
        await using (var first = await WorkerHost.StartAsync(server))
        {
            database = first.ConnectionString;
            var file = await first.UploadFileAsync(TinyBaseModel.Jsonl(240));
            // 240 steps: enough that the run cannot finish while the host is still shutting down (4 epochs, so only
            // 4 of the checkpoints carry model weights).
            jobId = (await first.AddJobAsync(file, epochs: 4)).Id;
            first.Enqueue(jobId);
            // A committed checkpoint, then a graceful stop while the remaining steps run.
            await first.WaitForEventAsync(jobId, e => e.Message == "Checkpoint created at step 5");
        } // graceful host shutdown while training

        await using var second = await WorkerHost.StartAsync(server, database: database);
        var released = (await second.EventsAsync(jobId)).Select(e => e.Message).ToList();
        Assert.Contains("The worker is shutting down; the job will resume from its last checkpoint", released);
        savedAt = (await second.CheckpointsAsync(jobId)).Max(c => c.StepNumber);
        Assert.True(savedAt < 240);

        // Hangfire re-queued the interrupted delivery; the new worker claims it and continues.
        var done = await second.WaitForTerminalAsync(jobId);
        Assert.Equal(JobStatus.Succeeded, done.Status);
        Assert.Equal(1, done.Attempts); // a clean hand-off does not use up an attempt
        var messages = (await second.EventsAsync(jobId)).Select(e => e.Message).ToList();
        Assert.Contains(messages, m => m.Contains($"resumed on cpu from checkpoint at step {savedAt}"));
    }

    [Fact]
    public async Task Orphaned_job_past_the_attempt_limit_fails_with_worker_lost()
    {
        await using var worker = await WorkerHost.StartAsync(server, maxAttempts: 2);
        var file = await worker.UploadFileAsync(TinyBaseModel.Jsonl(24));
        var job = await worker.AddJobAsync(file, epochs: 1, j =>
        {
            j.Status = JobStatus.Running;
            j.WorkerId = "dead-host:cpu:1";
            j.HeartbeatAt = DateTime.UtcNow.AddMinutes(-10);
            j.Attempts = 2;
        });

        var done = await worker.WaitForTerminalAsync(job.Id);

        Assert.Equal(JobStatus.Failed, done.Status);
        Assert.Equal("worker_lost", (string)done.Error!["code"]!);
        Assert.Contains("dead-host:cpu:1", (string)done.Error!["message"]!);
        Assert.Null(done.WorkerId);
        var last = (await worker.EventsAsync(job.Id))[^1];
        Assert.Equal(EventLevel.Error, last.Level);
    }

    [Fact]
    public async Task A_second_delivery_of_a_finished_job_changes_nothing()
    {
        await using var worker = await WorkerHost.StartAsync(server);
        var file = await worker.UploadFileAsync(TinyBaseModel.Jsonl(12));
        var job = await worker.AddJobAsync(file, epochs: 1);
        worker.Enqueue(job.Id);
        var done = await worker.WaitForTerminalAsync(job.Id);
        Assert.Equal(JobStatus.Succeeded, done.Status);
        var eventsBefore = await worker.EventsAsync(job.Id);

        var hangfireJob = worker.Enqueue(job.Id);
        await WaitForHangfireStateAsync(worker, hangfireJob, "Succeeded");

        var after = await worker.GetJobAsync(job.Id);
        Assert.Equal(JobStatus.Succeeded, after.Status);
        Assert.Equal(done.Attempts, after.Attempts);
        Assert.Equal(done.ResultArtifactSha256, after.ResultArtifactSha256);
        Assert.Equal(done.FinishedAt, after.FinishedAt);
        Assert.Equal(eventsBefore.Count, (await worker.EventsAsync(job.Id)).Count);
        Assert.Null(await worker.Services.GetRequiredService<JobClaims>().TryClaimAsync(job.Id, "another-worker", "cpu", CancellationToken.None));
    }

    [Fact]
    public async Task Invalid_training_file_fails_the_job_with_the_line_number()
    {
        await using var worker = await WorkerHost.StartAsync(server);
        var file = await worker.UploadFileAsync(TinyBaseModel.Jsonl(12) + "{\"messages\": [\n");
        var job = await worker.AddJobAsync(file, epochs: 1);
        worker.Enqueue(job.Id);

        var done = await worker.WaitForTerminalAsync(job.Id);

        Assert.Equal(JobStatus.Failed, done.Status);
        Assert.Equal("invalid_training_file", (string)done.Error!["code"]!);
        Assert.Equal("training_file", (string)done.Error!["param"]!);
        Assert.Contains("line 13", (string)done.Error!["message"]!);
    }

    [Fact]
    public async Task Requested_safety_strategies_run_as_jobs()
    {
        await using var worker = await WorkerHost.StartAsync(server);
        var file = await worker.UploadFileAsync(TinyBaseModel.Jsonl(12));
        var frozen = await worker.AddJobAsync(file, epochs: 1, j => j.Safety = SafetyPlan.Of(new FrozenLayersParams(0, 0)));
        // projected_gradients trains against the shipped refusal set.
        var projected = await worker.AddJobAsync(file, epochs: 1, j => j.Safety = SafetyPlan.Of(new ProjectedGradientsParams()));
        // frozen_layers without a layer range waits for the located layers: SafetyLayerLocationTests.
        worker.Enqueue(frozen.Id);
        worker.Enqueue(projected.Id);

        var frozenDone = await worker.WaitForTerminalAsync(frozen.Id);
        Assert.Equal(JobStatus.Succeeded, frozenDone.Status);
        // Layer 0 was frozen: its weights in the result equal the base model's.
        using (var trained = await LoadResultAsync(worker, frozenDone))
        using (var original = Ml.Models.HuggingFaceCheckpoint.Load(TinyBaseModel.Folder).Model)
        {
            var before = original.state_dict();
            var after = trained.state_dict();
            static bool Same(TorchSharp.torch.Tensor a, TorchSharp.torch.Tensor b) => a.allclose(b, rtol: 0, atol: 0);
            Assert.True(Same(after["model.layers.0.self_attn.q_proj.weight"], before["model.layers.0.self_attn.q_proj.weight"]));
            Assert.False(Same(after["model.layers.1.self_attn.q_proj.weight"], before["model.layers.1.self_attn.q_proj.weight"]));
        }

        var projectedDone = await worker.WaitForTerminalAsync(projected.Id);
        Assert.True(projectedDone.Status == JobStatus.Succeeded, projectedDone.Error?.ToJsonString());
    }

    [Fact]
    public async Task Post_training_strategies_and_their_combinations_run_as_jobs()
    {
        await using var worker = await WorkerHost.StartAsync(server);
        var file = await worker.UploadFileAsync(TinyBaseModel.Jsonl(12));
        Task<FineTuningJob> Add(string safety) => worker.AddJobAsync(file, epochs: 1, j => j.Safety = SafetyPlan.FromRequest(JsonNode.Parse(safety)!.AsObject()));
        var jobs = new Dictionary<string, FineTuningJob>
        {
            ["plain"] = await Add("""{"strategy": ["none"]}"""),
            ["antidote"] = await Add("""{"strategy": ["antidote"], "params": {"antidote": {"dense_ratio": 0.25}}}"""),
            ["merge_at_zero"] = await Add("""{"strategy": ["merge"], "params": {"merge": {"lambda": 0}}}"""),
            ["safemerge"] = await Add("""{"strategy": ["safemerge"]}"""),
            ["projected_plus_antidote"] = await Add("""{"strategy": ["projected_gradients", "antidote"], "params": {"antidote": {"dense_ratio": 0.25}}}"""),
            ["frozen_plus_merge"] = await Add("""{"strategy": ["frozen_layers", "merge"], "params": {"frozen_layers": {"first_layer": 0, "last_layer": 0}}}"""),
        };
        foreach (var job in jobs.Values) worker.Enqueue(job.Id);

        using var original = Ml.Models.HuggingFaceCheckpoint.Load(TinyBaseModel.Folder).Model;
        var before = original.state_dict();
        foreach (var (name, job) in jobs)
        {
            var done = await worker.WaitForTerminalAsync(job.Id);
            Assert.True(done.Status == JobStatus.Succeeded, $"{name}: {done.Error?.ToJsonString()}");
            using var trained = await LoadResultAsync(worker, done);
            var after = trained.state_dict();
            const string Probe = "model.layers.1.mlp.down_proj.weight";
            var unchanged = (after[Probe] - before[Probe]).abs().le(1e-7);
            switch (name)
            {
                case "plain":
                    // Without a post-step nearly every weight moves, so the resets below are the strategy's doing.
                    Assert.True(unchanged.to_type(TorchSharp.torch.ScalarType.Float32).mean().item<float>() < 0.05f);
                    break;
                case "antidote" or "projected_plus_antidote":
                    // Antidote resets the top quarter of each output row's fine-tune update to the base weights.
                    var perRow = unchanged.sum(1).to_type(TorchSharp.torch.ScalarType.Int64).data<long>().ToArray();
                    var columns = before[Probe].shape[1];
                    Assert.All(perRow, count => Assert.True(count >= columns / 4, $"{name}: {count} of {columns} reset"));
                    break;
                case "merge_at_zero":
                    // λ = 0 keeps the base model.
                    Assert.All(before.Keys, key => Assert.True(after[key].allclose(before[key], rtol: 0, atol: 1e-7), key));
                    break;
                case "frozen_plus_merge":
                    const string Frozen = "model.layers.0.self_attn.q_proj.weight";
                    Assert.True(after[Frozen].allclose(before[Frozen], rtol: 0, atol: 1e-7));
                    Assert.False(unchanged.all().item<bool>());
                    break;
            }
        }
    }

    [Fact]
    public async Task A_lora_job_trains_only_its_adapters_and_saves_them_beside_the_merged_weights()
    {
        await using var worker = await WorkerHost.StartAsync(server);
        var file = await worker.UploadFileAsync(TinyBaseModel.Jsonl(12));
        var method = JobMethod.FromRequest(JsonNode.Parse("""
            {"type": "supervised", "supervised": {"hyperparameters": {}, "adapter": {"type": "lora", "rank": 4, "alpha": 8, "dropout": 0, "target_modules": ["q_proj", "v_proj"]}}}
            """)!.AsObject(), null);
        var lora = await worker.AddJobAsync(file, epochs: 1, method: method);
        var loraWithAntidote = await worker.AddJobAsync(file, epochs: 1, method: method,
            configure: j => j.Safety = SafetyPlan.Of(new AntidoteParams()));
        worker.Enqueue(lora.Id);
        worker.Enqueue(loraWithAntidote.Id);

        var done = await worker.WaitForTerminalAsync(lora.Id);
        Assert.True(done.Status == JobStatus.Succeeded, done.Error?.ToJsonString());
        Assert.NotNull(done.AdapterArtifactSha256);
        var epoch = Assert.Single(await worker.CheckpointsAsync(lora.Id), c => c.IsModel);
        Assert.NotNull(epoch.AdapterArtifactSha256);
        await InResultFolderAsync(worker, done, folder =>
        {
            using var merged = Ml.Models.HuggingFaceCheckpoint.Load(folder).Model;
            using var reloaded = Ml.Models.HuggingFaceCheckpoint.Load(TinyBaseModel.Folder).Model;
            using var original = Ml.Models.HuggingFaceCheckpoint.Load(TinyBaseModel.Folder).Model;
            var before = original.state_dict();
            var after = merged.state_dict();
            // Untargeted weights never move; targeted ones carry the merged update.
            Assert.True(after["model.layers.1.self_attn.k_proj.weight"].allclose(before["model.layers.1.self_attn.k_proj.weight"], rtol: 0, atol: 0));
            Assert.True(after["model.layers.1.mlp.down_proj.weight"].allclose(before["model.layers.1.mlp.down_proj.weight"], rtol: 0, atol: 0));
            Assert.False(after["model.layers.1.self_attn.q_proj.weight"].allclose(before["model.layers.1.self_attn.q_proj.weight"], rtol: 0, atol: 0));

            // The PEFT adapter saved beside the weights reproduces them on the base model.
            Ml.Lora.LoraAdapter.Load(reloaded, Path.Combine(folder, FineTuneService.Worker.Training.JobAdapter.AdapterFolder));
            Ml.Lora.LoraAdapter.MergeAndUnload(reloaded);
            Assert.True(reloaded.state_dict()["model.layers.1.self_attn.q_proj.weight"]
                .allclose(after["model.layers.1.self_attn.q_proj.weight"], rtol: 0, atol: 1e-6));
        });

        var pruned = await worker.WaitForTerminalAsync(loraWithAntidote.Id);
        Assert.True(pruned.Status == JobStatus.Succeeded, pruned.Error?.ToJsonString());

        // LoRA on the LoRA-trained epoch checkpoint: the parent's adapter stays merged into the weights the child
        // starts from, and the child trains a new adapter over them (its base_model_name_or_path names the parent).
        var child = await worker.AddJobAsync(file, epochs: 1, model: epoch.FineTunedModelCheckpoint, method: method);
        worker.Enqueue(child.Id);
        var grandchild = await worker.WaitForTerminalAsync(child.Id);
        Assert.True(grandchild.Status == JobStatus.Succeeded, grandchild.Error?.ToJsonString());
        Assert.StartsWith($"ft:{TinyBaseModel.Id}:", grandchild.FineTunedModel);
        Assert.NotNull(grandchild.AdapterArtifactSha256);
        using var parentWeights = await LoadResultAsync(worker, done);
        await InResultFolderAsync(worker, grandchild, folder =>
        {
            var adapterConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, FineTuneService.Worker.Training.JobAdapter.AdapterFolder, "adapter_config.json")))!;
            Assert.StartsWith($"{epoch.FineTunedModelCheckpoint}@", adapterConfig["base_model_name_or_path"]!.GetValue<string>());
            // The new adapter applied to the parent's merged weights reproduces the child's weights.
            using var merged = Ml.Models.HuggingFaceCheckpoint.Load(folder).Model;
            Ml.Lora.LoraAdapter.Load(parentWeights, Path.Combine(folder, FineTuneService.Worker.Training.JobAdapter.AdapterFolder));
            Ml.Lora.LoraAdapter.MergeAndUnload(parentWeights);
            const string Q = "model.layers.1.self_attn.q_proj.weight";
            Assert.True(parentWeights.state_dict()[Q].allclose(merged.state_dict()[Q], rtol: 0, atol: 1e-6));
            Assert.True(File.Exists(Path.Combine(folder, "tokenizer.json")) || File.Exists(Path.Combine(folder, "vocab.json")));
        });
    }

    private static async Task<Ml.Models.DecoderLM> LoadResultAsync(WorkerHost worker, FineTuningJob done)
    {
        Ml.Models.DecoderLM? model = null;
        await InResultFolderAsync(worker, done, folder => model = Ml.Models.HuggingFaceCheckpoint.Load(folder).Model);
        return model!;
    }

    /// <summary>Unpacks the job's result bundle into a temporary folder for <paramref name="inspect"/>, then removes it.</summary>
    private static async Task InResultFolderAsync(WorkerHost worker, FineTuningJob done, Action<string> inspect)
    {
        var folder = Path.Combine(Path.GetTempPath(), $"fts-result-{Guid.NewGuid():N}");
        try
        {
            await using (var bundle = await worker.Services.GetRequiredService<Core.Artifacts.IArtifactStore>()
                             .OpenReadAsync(done.ResultArtifactSha256!, CancellationToken.None))
                await ModelBundle.UnpackAsync(bundle!, folder);
            inspect(folder);
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }

    private static async Task WaitForHangfireStateAsync(WorkerHost worker, string hangfireJobId, string state)
    {
        var storage = worker.Services.GetRequiredService<JobStorage>();
        var reached = await Eventually.UntilAsync(() =>
        {
            using var connection = storage.GetConnection();
            return Task.FromResult(connection.GetStateData(hangfireJobId)?.Name);
        }, name => name == state, TimeSpan.FromSeconds(60));
        if (reached != state) throw new TimeoutException($"Hangfire job {hangfireJobId} did not reach {state} (last: {reached}).");
    }

    private static int StepIn(string message) => int.Parse(StepNumber().Match(message).Groups[1].Value);

    [GeneratedRegex(@"step (\d+)")]
    private static partial Regex StepNumber();
}
