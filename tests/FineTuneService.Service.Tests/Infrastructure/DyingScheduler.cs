using FineTuneService.Core.Domain;
using FineTuneService.Core.Jobs;
using Microsoft.Extensions.DependencyInjection;

namespace FineTuneService.Service.Tests.Infrastructure;

/// <summary>
/// A fault injector for the moment between a commit and its Hangfire enqueue: the enqueues named in
/// <paramref name="dying"/> throw as if the process died right there, so nothing of them reaches Hangfire; the
/// others go through the real scheduler. The test then disposes the host, as the crash would have, and starts another.
/// </summary>
public sealed class DyingScheduler(IJobScheduler real, params Dispatch[] dying) : IJobScheduler
{
    /// <summary>Replaces the host's <see cref="IJobScheduler"/> with one that dies on <paramref name="dying"/>.</summary>
    public static void Install(IServiceCollection services, params Dispatch[] dying)
    {
        var registered = services.Last(d => d.ServiceType == typeof(IJobScheduler));
        services.AddSingleton<IJobScheduler>(provider =>
            new DyingScheduler((IJobScheduler)ActivatorUtilities.CreateInstance(provider, registered.ImplementationType!), dying));
    }

    public int Deaths { get; private set; }

    public string EnqueueFileValidation(string fileId) => Send(Dispatch.FileValidation, () => real.EnqueueFileValidation(fileId));

    public string EnqueueTraining(string jobId) => Send(Dispatch.Training, () => real.EnqueueTraining(jobId));

    public string EnqueueFileScreening(string fileId) => Send(Dispatch.FileScreening, () => real.EnqueueFileScreening(fileId));

    public string EnqueueSafetyEvaluation(string evaluationId) => Send(Dispatch.SafetyEvaluation, () => real.EnqueueSafetyEvaluation(evaluationId));

    // Not sent through the outbox: the API queues every pending model again at start.
    public string EnqueueSafetyLayerLocation(string baseModelId) => real.EnqueueSafetyLayerLocation(baseModelId);

    public string EnqueueHardening(string runId) => Send(Dispatch.Hardening, () => real.EnqueueHardening(runId));

    public string EnqueueBaseModelScoring(string baseModelId) => real.EnqueueBaseModelScoring(baseModelId);

    private string Send(Dispatch dispatch, Func<string> enqueue)
    {
        if (!dying.Contains(dispatch)) return enqueue();
        Deaths++;
        throw new ProcessDiedException(dispatch);
    }
}

public sealed class ProcessDiedException(Dispatch dispatch) : Exception($"(fault injection) the process died before enqueueing {dispatch}");
