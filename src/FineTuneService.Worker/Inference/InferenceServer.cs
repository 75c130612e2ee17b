using System.Security.Cryptography;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FineTuneService.Worker.Inference;

/// <summary>
/// The worker host's inference endpoint: a small Kestrel server (its own minimal app, so the worker host stays a
/// plain generic host) serving <c>POST /v1/chat/completions</c> to callers that present this start's secret. Once
/// listening it registers itself in <c>inference_endpoints</c> and refreshes the row every
/// <see cref="InferenceOptions.HeartbeatInterval"/> with its load and loaded models; a clean stop removes the row, a
/// crashed server's row goes stale and the API skips it.
/// </summary>
public sealed class InferenceServer(
    ChatCompletionsHandler handler,
    ServingModels models,
    IDbContextFactory<FineTuneDbContext> contexts,
    IOptions<InferenceOptions> options,
    ILoggerFactory loggers,
    TimeProvider time) : BackgroundService
{
    private readonly ILogger _logger = loggers.CreateLogger<InferenceServer>();
    private readonly string _token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
    private WebApplication? _app;
    private string? _endpointId;

    /// <summary>The URL registered for the API (after start).</summary>
    public string? Url { get; private set; }

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.Configuration.Sources.Clear(); // the worker's configuration is not this inner app's
        builder.Configuration.AddInMemoryCollection();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(loggers);
        builder.Services.AddSingleton<IHostLifetime, OuterHostLifetime>(); // Ctrl+C belongs to the worker host
        builder.WebHost.UseUrls(options.Value.Listen);
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Limits.MaxRequestBodySize = 8 * 1024 * 1024);
        var app = builder.Build();
        app.MapPost("/v1/chat/completions", async context =>
        {
            if (context.Request.Headers.Authorization.ToString() != $"Bearer {_token}")
            {
                context.Response.StatusCode = StatusCodes.Status401Unauthorized;
                return;
            }
            await handler.HandleAsync(context);
        });
        app.MapGet("/health", () => TypedResults.Ok(new { status = "ok", load = models.Load }));
        await app.StartAsync(cancellationToken);
        _app = app;

        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        Url = options.Value.AdvertisedUrl ?? bound;
        _endpointId = $"{Environment.MachineName}:{Environment.ProcessId}:{_token[..8]}";
        await using (var db = await contexts.CreateDbContextAsync(cancellationToken))
        {
            db.InferenceEndpoints.Add(new InferenceEndpoint
            {
                Id = _endpointId, Url = Url, AccessToken = _token, Devices = string.Join(",", options.Value.Devices),
                StartedAt = time.GetUtcNow().UtcDateTime, HeartbeatAt = time.GetUtcNow().UtcDateTime,
            });
            await db.SaveChangesAsync(cancellationToken);
        }
        _logger.LogInformation("Inference server listening on {Bound}, registered as {Endpoint} at {Url}", bound, _endpointId, Url);
        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.HeartbeatInterval, time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await using var db = await contexts.CreateDbContextAsync(stoppingToken);
                var now = time.GetUtcNow().UtcDateTime;
                var load = models.Load;
                var loaded = models.Loaded.ToList();
                var updated = await db.InferenceEndpoints.Where(e => e.Id == _endpointId).ExecuteUpdateAsync(set => set
                    .SetProperty(e => e.HeartbeatAt, now)
                    .SetProperty(e => e.Load, load)
                    .SetProperty(e => e.LoadedModels, loaded), stoppingToken);
                if (updated == 0) _logger.LogWarning("Inference endpoint {Endpoint} row is gone; the API cannot find this server", _endpointId);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                _logger.LogWarning(e, "Inference endpoint heartbeat failed; retrying at the next interval");
            }
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (_endpointId is not null)
        {
            try
            {
                await using var db = await contexts.CreateDbContextAsync(cancellationToken);
                await db.InferenceEndpoints.Where(e => e.Id == _endpointId).ExecuteDeleteAsync(cancellationToken);
            }
            catch (Exception e)
            {
                _logger.LogWarning(e, "Could not remove inference endpoint {Endpoint}; it will go stale", _endpointId);
            }
        }
        if (_app is not null)
        {
            await _app.StopAsync(cancellationToken);
            await _app.DisposeAsync();
        }
    }

    /// <summary>The inner app neither listens for Ctrl+C nor stops the process: the worker host does both.</summary>
    private sealed class OuterHostLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
