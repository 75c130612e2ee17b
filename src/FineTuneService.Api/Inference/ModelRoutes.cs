using System.Collections.Concurrent;
using FineTuneService.Core.Data;
using FineTuneService.Core.Models;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace FineTuneService.Api.Inference;

/// <summary>
/// Which weights a tenant's model name routes to, remembered for <see cref="InferenceRoutingOptions.ModelRouteLifetime"/>
/// so that a chat completion costs no database round trip on the API (on 2 busy cores each one is a wake-up of a
/// PostgreSQL backend, and it was most of what forwarding added to the time to first token). This is routing, not
/// access: the inference server looks the model up for the tenant again on every request, so a model held, rejected
/// or deleted in between is a 404 there. A model this host deletes is forgotten at once; a name that is no model is
/// never remembered.
/// </summary>
public sealed class ModelRoutes(IDbContextFactory<FineTuneDbContext> contexts, IOptions<InferenceRoutingOptions> options, TimeProvider time)
{
    private const int MaxRoutes = 10_000;
    private readonly ConcurrentDictionary<(string Tenant, string Model), (DateTimeOffset Until, string WeightsKey)> _routes = new();

    /// <summary>The weights key of <paramref name="modelId"/> for <paramref name="tenantId"/>, or null when the tenant has no such model.</summary>
    public async Task<string?> WeightsKeyAsync(string tenantId, string modelId, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        if (_routes.TryGetValue((tenantId, modelId), out var route) && route.Until > now) return route.WeightsKey;

        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var model = await ModelAccess.FindAsync(db, tenantId, modelId, cancellationToken);
        if (model is null) return null;
        if (_routes.Count >= MaxRoutes) _routes.Clear();
        _routes[(tenantId, modelId)] = (now + options.Value.ModelRouteLifetime, model.WeightsSha256);
        return model.WeightsSha256;
    }

    /// <summary>Forgets a deleted fine-tuned model and its checkpoint models (<c>{model}:ckpt-step-N</c>).</summary>
    public void Forget(string tenantId, string modelId)
    {
        foreach (var key in _routes.Keys.Where(k => k.Tenant == tenantId && (k.Model == modelId || k.Model.StartsWith(modelId + ":", StringComparison.Ordinal))))
            _routes.TryRemove(key, out _);
    }
}
