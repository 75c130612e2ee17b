using Hangfire;
using Npgsql;
using Polly;
using Polly.Retry;

namespace FineTuneService.Core.Jobs;

/// <summary>Puts work on the Hangfire queues by contract, so callers never reference the implementing host.</summary>
public interface IJobScheduler
{
    /// <summary>Queues file validation on the default queue; returns the Hangfire job id.</summary>
    string EnqueueFileValidation(string fileId);

    /// <summary>Queues a fine-tuning run on the gpu queue; returns the Hangfire job id.</summary>
    string EnqueueTraining(string jobId);

    /// <summary>Queues harm screening of a structurally valid training file on the screening queue.</summary>
    string EnqueueFileScreening(string fileId);

    /// <summary>
    /// Queues a safety evaluation on the gpu queue: it loads a model and generates on a device, so it takes its turn
    /// with training there instead of sharing a device's memory with a running job.
    /// </summary>
    string EnqueueSafetyEvaluation(string evaluationId);

    /// <summary>Queues the safety-layer locator for a base model on the gpu queue (it generates on a device).</summary>
    string EnqueueSafetyLayerLocation(string baseModelId);

    /// <summary>Queues a base model's hardening run on the gpu queue (it trains on a device).</summary>
    string EnqueueHardening(string runId);

    /// <summary>Queues the one-time safety scoring of a newly registered base model on the gpu queue (it generates on a device).</summary>
    string EnqueueBaseModelScoring(string baseModelId);
}

internal sealed class HangfireJobScheduler(IBackgroundJobClient client) : IJobScheduler
{
    /// <summary>Enqueueing is one short write to PostgreSQL; retry it when the connection blips.</summary>
    private static readonly ResiliencePipeline Retry = new ResiliencePipelineBuilder()
        .AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = new PredicateBuilder()
                .Handle<NpgsqlException>(e => e.IsTransient)
                .Handle<TimeoutException>(),
            MaxRetryAttempts = 4,
            BackoffType = DelayBackoffType.Exponential,
            Delay = TimeSpan.FromMilliseconds(200),
            UseJitter = true,
        })
        .Build();

    public string EnqueueFileValidation(string fileId) =>
        Retry.Execute(() => client.Enqueue<IFileValidationJob>(Queues.Default, job => job.RunAsync(fileId, CancellationToken.None)));

    public string EnqueueTraining(string jobId) =>
        Retry.Execute(() => client.Enqueue<IFineTuneJobRunner>(Queues.Gpu, job => job.RunAsync(jobId, CancellationToken.None)));

    public string EnqueueFileScreening(string fileId) =>
        Retry.Execute(() => client.Enqueue<IFileScreeningJob>(Queues.Screening, job => job.RunAsync(fileId, CancellationToken.None)));

    public string EnqueueSafetyEvaluation(string evaluationId) =>
        Retry.Execute(() => client.Enqueue<ISafetyEvaluationJob>(Queues.Gpu, job => job.RunAsync(evaluationId, CancellationToken.None)));

    public string EnqueueSafetyLayerLocation(string baseModelId) =>
        Retry.Execute(() => client.Enqueue<ISafetyLayerLocationJob>(Queues.Gpu, job => job.RunAsync(baseModelId, CancellationToken.None)));

    public string EnqueueHardening(string runId) =>
        Retry.Execute(() => client.Enqueue<IHardeningJob>(Queues.Gpu, job => job.RunAsync(runId, CancellationToken.None)));

    public string EnqueueBaseModelScoring(string baseModelId) =>
        Retry.Execute(() => client.Enqueue<IBaseModelScoringJob>(Queues.Gpu, job => job.RunAsync(baseModelId, CancellationToken.None)));
}
