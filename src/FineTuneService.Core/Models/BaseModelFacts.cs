using System.Text.Json.Nodes;
using FineTuneService.Contracts.Safety;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using Microsoft.EntityFrameworkCore;

namespace FineTuneService.Core.Models;

/// <summary>What the contract's rules need to know about the model a job starts from, read from its root base model.</summary>
public static class BaseModelFacts
{
    /// <summary>
    /// The layer count of the root base model <paramref name="rootModel"/> (<see cref="ModelLineage.RootModel"/>):
    /// continued training keeps the root's architecture; and whether its safety layers are located: known once the
    /// locator has run (ready or failed), unknown while it is pending (the job then waits for it). Unknown when that
    /// base model is gone.
    /// </summary>
    public static async Task<ModelFacts> OfAsync(FineTuneDbContext db, string rootModel, CancellationToken cancellationToken)
    {
        var model = await db.BaseModels.AsNoTracking().Where(m => m.Id == rootModel)
            .Select(m => new { m.Config, m.SafetyLayersStatus }).FirstOrDefaultAsync(cancellationToken);
        return model is null ? ModelFacts.Unknown : new ModelFacts(LayerCount(model.Config), SafetyLayersLocated(model.SafetyLayersStatus));
    }

    private static bool? SafetyLayersLocated(SafetyLayersStatus status) => status switch
    {
        SafetyLayersStatus.Ready => true,
        SafetyLayersStatus.Failed => false,
        _ => null,
    };

    private static int? LayerCount(JsonObject config) =>
        config["num_hidden_layers"] is JsonValue value && value.TryGetValue<int>(out var layers) ? layers : null;
}
