using System.Text.Json.Nodes;
using FineTuneService.Contracts.Safety;
using FineTuneService.Core.Data;
using Microsoft.EntityFrameworkCore;

namespace FineTuneService.Core.Models;

/// <summary>What the contract's rules need to know about the model a job starts from, read from its root base model.</summary>
public static class BaseModelFacts
{
    private const int MaxLineage = 64;

    /// <summary>
    /// The layer count of <paramref name="model"/>'s root base model: a base model's own config, or, for a fine-tuned
    /// model, that of the base its chain of jobs started from. Unknown when the chain cannot be followed.
    /// </summary>
    public static async Task<ModelFacts> OfAsync(FineTuneDbContext db, string model, CancellationToken cancellationToken)
    {
        var name = model;
        for (var hop = 0; hop < MaxLineage; hop++)
        {
            var config = await db.BaseModels.AsNoTracking().Where(m => m.Id == name).Select(m => m.Config).FirstOrDefaultAsync(cancellationToken);
            if (config is not null) return new ModelFacts(LayerCount(config));
            var parent = await db.Jobs.AsNoTracking().Where(j => j.FineTunedModel == name).Select(j => j.Model).FirstOrDefaultAsync(cancellationToken);
            if (parent is null) break;
            name = parent;
        }
        return ModelFacts.Unknown;
    }

    private static int? LayerCount(JsonObject config) =>
        config["num_hidden_layers"] is JsonValue value && value.TryGetValue<int>(out var layers) ? layers : null;
}
