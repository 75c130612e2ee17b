using FineTuneService.Worker.Safety;
using FineTuneService.Worker.Training;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FineTuneService.Worker.Inference;

public static class InferenceHostingExtensions
{
    /// <summary>
    /// The inference server (<see cref="InferenceServer"/>) and its chat pipeline: the output guard over the local
    /// engine (<see cref="LocalChatClient"/>: loaded models with continuous batching), or over
    /// <see cref="UpstreamChatClient"/> when <c>Inference:Upstream:BaseAddress</c> is set. Needs the worker's services
    /// (<c>AddFineTuneWorker</c>: model bundles, judges). <c>Inference:Enabled=false</c> leaves the server out.
    /// </summary>
    public static IHostApplicationBuilder AddInferenceServer(this IHostApplicationBuilder builder)
    {
        builder.Services.AddInferenceServer(builder.Configuration);
        return builder;
    }

    /// <inheritdoc cref="AddInferenceServer(IHostApplicationBuilder)"/>
    public static IServiceCollection AddInferenceServer(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<InferenceOptions>()
            .BindConfiguration(InferenceOptions.SectionName)
            .PostConfigure(o => o.Devices = o.Devices.Length == 0 ? ["cpu"] : o.Devices)
            .ValidateDataAnnotations()
            .Validate(o => o.Devices.All(TrainingDevice.IsValidName), "Inference:Devices entries must be \"cpu\" or \"cuda:N\".")
            .Validate(o => o.HeartbeatInterval > TimeSpan.Zero, "Inference:HeartbeatInterval must be positive.")
            .Validate(o => Uri.TryCreate(o.Listen, UriKind.Absolute, out _), "Inference:Listen must be an absolute URL such as http://0.0.0.0:8090.")
            .ValidateOnStart();
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<ServingModels>();
        services.AddSingleton<ChatCompletionsHandler>();
        services.AddChatClient(provider => provider.GetRequiredService<IOptions<InferenceOptions>>().Value.Upstream is { BaseAddress: not null } upstream
                ? new UpstreamChatClient(upstream)
                : new LocalChatClient(provider.GetRequiredService<ServingModels>()))
            .Use((inner, provider) => new OutputGuardChatClient(inner, provider.GetRequiredService<SafetyEvaluationResources>(),
                provider.GetRequiredService<ILogger<OutputGuardChatClient>>()));
        if (configuration.GetValue<bool?>($"{InferenceOptions.SectionName}:{nameof(InferenceOptions.Enabled)}") ?? true)
            services.AddHostedService<InferenceServer>();
        return services;
    }
}
