using System.Collections.Concurrent;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace FineTuneService.Api.Inference;

/// <summary>API-side settings of chat completions, bound from the <c>Inference</c> section.</summary>
public sealed record InferenceRoutingOptions
{
    public const string SectionName = "Inference";

    /// <summary>An endpoint whose heartbeat is older than this counts as dead and is skipped.</summary>
    public TimeSpan EndpointTimeout { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>How long the list of live endpoints is reused before it is read again.</summary>
    public TimeSpan EndpointRefresh { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How long an endpoint that refused a connection is passed over.</summary>
    public TimeSpan FailedEndpointPause { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long the weights a model name routes to are reused (<see cref="ModelRoutes"/>; access is checked again by the inference server).</summary>
    public TimeSpan ModelRouteLifetime { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Longest silence on a forwarded request (a long non-streamed completion on a CPU).</summary>
    public TimeSpan ActivityTimeout { get; init; } = TimeSpan.FromMinutes(10);
}

/// <summary>
/// The live inference endpoints, read from <c>inference_endpoints</c> at most once per
/// <see cref="InferenceRoutingOptions.EndpointRefresh"/>. Candidates for a model come best first: endpoints that
/// have it loaded, then the least loaded; endpoints with a stale heartbeat or a recent connection failure are left out.
/// </summary>
public sealed class InferenceEndpointDirectory(IDbContextFactory<FineTuneDbContext> contexts, IOptions<InferenceRoutingOptions> options, TimeProvider time)
{
    private readonly SemaphoreSlim _refresh = new(1, 1);
    private readonly ConcurrentDictionary<string, DateTimeOffset> _failedUntil = new();
    private (DateTimeOffset ReadAt, IReadOnlyList<InferenceEndpoint> Endpoints) _cache = (DateTimeOffset.MinValue, []);

    public async Task<IReadOnlyList<InferenceEndpoint>> CandidatesAsync(string weightsKey, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var endpoints = await LiveAsync(now, cancellationToken);
        return endpoints
            .Where(e => !_failedUntil.TryGetValue(e.Id, out var until) || until < now)
            .OrderByDescending(e => e.LoadedModels.Contains(weightsKey))
            .ThenBy(e => e.Load)
            .ThenBy(_ => Random.Shared.Next())
            .ToList();
    }

    /// <summary>Passes over an endpoint that could not be reached (until it is reached again after the pause).</summary>
    public void MarkFailed(InferenceEndpoint endpoint) => _failedUntil[endpoint.Id] = time.GetUtcNow() + options.Value.FailedEndpointPause;

    private async Task<IReadOnlyList<InferenceEndpoint>> LiveAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (now - _cache.ReadAt < options.Value.EndpointRefresh) return _cache.Endpoints;
        await _refresh.WaitAsync(cancellationToken);
        try
        {
            if (now - _cache.ReadAt < options.Value.EndpointRefresh) return _cache.Endpoints;
            var since = (now - options.Value.EndpointTimeout).UtcDateTime;
            await using var db = await contexts.CreateDbContextAsync(cancellationToken);
            var live = await db.InferenceEndpoints.AsNoTracking().Where(e => e.HeartbeatAt >= since).ToListAsync(cancellationToken);
            _cache = (now, live);
            return live;
        }
        finally
        {
            _refresh.Release();
        }
    }
}
