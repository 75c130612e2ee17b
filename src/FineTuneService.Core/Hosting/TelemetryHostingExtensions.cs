using FineTuneService.Core.Telemetry;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Npgsql;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace FineTuneService.Core.Hosting;

/// <summary>Telemetry settings: section "Telemetry". OTLP export follows the standard <c>OTEL_EXPORTER_OTLP_*</c> variables.</summary>
public sealed record TelemetryOptions
{
    public const string Section = "Telemetry";

    /// <summary>Serve the metrics in Prometheus text format at <see cref="PrometheusPath"/> on the host's HTTP port.</summary>
    public bool Prometheus { get; init; }

    public string PrometheusPath { get; init; } = "/metrics";
}

public static class TelemetryHostingExtensions
{
    /// <summary>
    /// OpenTelemetry traces and metrics: ASP.NET Core, HttpClient, Npgsql and the .NET runtime, plus the service's own
    /// meter (<see cref="FineTuneMeters.Name"/>: queue depth per queue, jobs by state, and the worker's tokens/s,
    /// checkpoint upload and evaluation times). Exported over OTLP when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set, and
    /// scraped from <c>/metrics</c> when <c>Telemetry:Prometheus</c> is true. Needs the database and Hangfire storage.
    /// </summary>
    public static IHostApplicationBuilder AddFineTuneTelemetry(this IHostApplicationBuilder builder, string serviceName)
    {
        builder.Services.AddOptions<TelemetryOptions>().BindConfiguration(TelemetryOptions.Section);
        var telemetry = builder.Configuration.GetSection(TelemetryOptions.Section).Get<TelemetryOptions>() ?? new TelemetryOptions();
        builder.Services.AddSingleton<FleetMetrics>();

        var otel = builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(serviceName, serviceInstanceId: Environment.MachineName))
            .WithTracing(tracing => tracing
                .AddAspNetCoreInstrumentation(o => o.Filter = context => !IsProbe(context.Request.Path, telemetry))
                .AddHttpClientInstrumentation()
                .AddNpgsql()
                .AddSource(FineTuneMeters.Name))
            .WithMetrics(metrics =>
            {
                metrics
                    .AddAspNetCoreInstrumentation()
                    .AddHttpClientInstrumentation()
                    .AddRuntimeInstrumentation()
                    .AddNpgsqlInstrumentation()
                    .AddMeter(FineTuneMeters.Name);
                if (telemetry.Prometheus) metrics.AddPrometheusExporter(o => o.ScrapeEndpointPath = telemetry.PrometheusPath);
            });
        if (!string.IsNullOrWhiteSpace(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"])) otel.UseOtlpExporter();
        return builder;
    }

    /// <summary>The Prometheus scrape endpoint, when <c>Telemetry:Prometheus</c> is true; the fleet gauges start here.</summary>
    public static IEndpointRouteBuilder MapTelemetryEndpoints(this IEndpointRouteBuilder endpoints)
    {
        var options = endpoints.ServiceProvider.GetRequiredService<IOptions<TelemetryOptions>>().Value;
        endpoints.ServiceProvider.GetRequiredService<FleetMetrics>();
        if (options.Prometheus) endpoints.MapPrometheusScrapingEndpoint(options.PrometheusPath);
        return endpoints;
    }

    private static bool IsProbe(Microsoft.AspNetCore.Http.PathString path, TelemetryOptions telemetry) =>
        path.StartsWithSegments(HealthEndpoints.LivenessPath) || path.StartsWithSegments(HealthEndpoints.ReadinessPath)
        || path.StartsWithSegments(telemetry.PrometheusPath);
}
