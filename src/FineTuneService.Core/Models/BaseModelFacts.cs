using System.Text.Json.Nodes;
using FineTuneService.Contracts.Safety;
using FineTuneService.Core.Data;
using Microsoft.EntityFrameworkCore;

namespace FineTuneService.Core.Models;

/// <summary>What the contract's rules need to know about the model a job starts from, read from its root base model.</summary>
public static class BaseModelFacts
{
    /// <summary>
    /// The layer count of the root base model <paramref name="rootModel"/> (<see cref="ModelLineage.RootModel"/>):
    /// continued training keeps the root's architecture. Unknown when that base model is gone.
    /// </summary>
    public static async Task<ModelFacts> OfAsync(FineTuneDbContext db, string rootModel, CancellationToken cancellationToken)
    {
        var config = await db.BaseModels.AsNoTracking().Where(m => m.Id == rootModel).Select(m => m.Config).FirstOrDefaultAsync(cancellationToken);
        return config is null ? ModelFacts.Unknown : new ModelFacts(LayerCount(config));
    }

    private static int? LayerCount(JsonObject config) =>
        config["num_hidden_layers"] is JsonValue value && value.TryGetValue<int>(out var layers) ? layers : null;
}
