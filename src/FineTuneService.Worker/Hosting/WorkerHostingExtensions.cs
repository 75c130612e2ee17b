using FineTuneService.Core.Hosting;
using FineTuneService.Core.Jobs;
using FineTuneService.Core.Models;
using FineTuneService.Worker.Jobs;
using FineTuneService.Worker.Models;
using FineTuneService.Worker.Safety;
using FineTuneService.Worker.Telemetry;
using FineTuneService.Worker.Training;
using FineTuneService.Ml.Evaluation.Judges;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Polly;

namespace FineTuneService.Worker.Hosting;

public static class WorkerHostingExtensions
{
    /// <summary>
    /// The training side of the service: one Hangfire server per <c>Worker:Devices</c> entry on the gpu queue,
    /// <see cref="IFineTuneJobRunner"/>, the safety-layer locator of imported base models (<see cref="ISafetyLayerLocationJob"/>),
    /// the base-model cache, crash recovery, and a small server for the screening
    /// queue (<see cref="IFileScreeningJob"/>). Needs the database, the artifact
    /// store and Hangfire storage (Core's <c>AddFineTuneDatabase</c>, <c>AddArtifactStore</c>, <c>AddHangfireStorage</c>).
    /// </summary>
    public static IHostApplicationBuilder AddFineTuneWorker(this IHostApplicationBuilder builder)
    {
        builder.Services.AddFineTuneWorker();
        return builder;
    }

    /// <inheritdoc cref="AddFineTuneWorker(IHostApplicationBuilder)"/>
    public static IServiceCollection AddFineTuneWorker(this IServiceCollection services)
    {
        services.AddOptions<WorkerOptions>()
            .BindConfiguration(WorkerOptions.SectionName)
            .PostConfigure(o => o.Devices = o.Devices.Length == 0 ? ["cpu"] : o.Devices)
            .ValidateDataAnnotations()
            .Validate(o => o.Devices.All(TrainingDevice.IsValidName),
                "Worker:Devices entries must be \"cpu\" or \"cuda:N\".")
            .Validate(o => o.Devices.Distinct(StringComparer.OrdinalIgnoreCase).Count() == o.Devices.Length,
                "Worker:Devices must not list a device twice.")
            .Validate(o => o.HeartbeatInterval > TimeSpan.Zero && o.RecoveryInterval > TimeSpan.Zero,
                "Worker:HeartbeatInterval and Worker:RecoveryInterval must be positive.")
            .Validate(o => o.StaleTimeout >= 3 * o.HeartbeatInterval,
                "Worker:StaleTimeout must be at least three heartbeat intervals, or live jobs would be taken over.")
            .Validate(o => o.ShutdownTimeout > TimeSpan.Zero, "Worker:ShutdownTimeout must be positive.")
            .ValidateOnStart();
        // One timeout for the host and the device servers: a stopping job gets the whole of it to checkpoint.
        services.AddOptions<HostOptions>().Configure<IOptions<WorkerOptions>>((host, worker) => host.ShutdownTimeout = worker.Value.ShutdownTimeout);

        // First of the worker's hosted services: CUDA is initialised before anything else touches torch.
        services.AddSingleton<CudaPreflight>();
        services.AddHostedService(provider => provider.GetRequiredService<CudaPreflight>());

        services.TryAddSingleton(TimeProvider.System);
        services.AddResiliencePipeline(ArtifactTransfer.PipelineKey, builder => ArtifactTransfer.Configure(builder));

        services.AddSingleton<WorkerMetrics>();
        services.AddSingleton<ArtifactTransfer>();
        services.AddSingleton<BaseModelCache>();
        services.AddSingleton<JobClaims>();
        services.AddSingleton<JobLeases>();
        services.AddSingleton<RunLeases>();
        services.AddSingleton<TrainingEngine>();
        services.AddSingleton<WorkerPrecision>();

        services.AddOptions<SafetyEvaluationOptions>()
            .BindConfiguration(SafetyEvaluationOptions.SectionName)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        services.AddOptions<ExternalJudgeOptions>().BindConfiguration(SafetyEvaluationOptions.ExternalJudgeSectionName);
        services.AddExternalHarmJudge(_ => { }); // resolved only when ExternalJudge:BaseAddress is set
        services.AddSingleton<SafetyEvaluationResources>();
        services.AddSingleton<ModelSafetyEvaluator>();
        services.AddSingleton<BaseModelScoreCache>();
        services.AddSingleton<BaseModelScoring>();
        services.AddSingleton<JobSafetyPipeline>();
        services.AddScoped<CurrentWorkerSlot>();
        services.AddScoped<IFineTuneJobRunner, FineTuneJobRunner>();
        services.AddSingleton<ShippedHarmJudges>();
        services.AddScoped<JobPromotion>();
        services.AddScoped<IFileScreeningJob, FileScreeningJob>();
        services.AddScoped<ISafetyEvaluationJob, SafetyEvaluationRunner>();
        services.AddScoped<ISafetyLayerLocationJob, SafetyLayerLocationJob>();
        services.AddScoped<IBaseModelScoringJob, BaseModelScoringJob>();
        services.AddScoped<IHardeningJob, HardeningRunner>();
        services.TryAddSingleton<BaseModelRegistry>(); // hardening runs register their model (the API host has it already)

        services.AddSingleton<DeviceServers>();
        services.AddHostedService(provider => provider.GetRequiredService<DeviceServers>());
        services.AddHealthChecks().AddCheck<DeviceServers>("devices", tags: [HealthEndpoints.ReadyTag]);
        services.AddHostedService<ScreeningServer>();
        services.AddSingleton<StaleJobMonitor>();
        services.AddHostedService(provider => provider.GetRequiredService<StaleJobMonitor>());
        return services;
    }
}
