using System.Text.Json.Nodes;
using FineTuneService.Contracts.Judges;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using Microsoft.EntityFrameworkCore;

namespace FineTuneService.Core.Safety;

/// <summary>
/// A base model's cached safety scores as the API shows them (<c>/v1/models</c>, a hardening run's report):
/// <c>{judge, harmful_score, judges, refusal_rate, over_refusal_rate, scored_at}</c>, refusal rate by the keyword rule.
/// </summary>
public static class BaseModelScores
{
    public static JsonObject Summary(BaseModelSafetyScore score)
    {
        var judges = new JsonObject();
        foreach (var (judge, value) in score.JudgeScores.Scores) judges[judge] = value;
        return new JsonObject
        {
            ["judge"] = score.Judge,
            ["harmful_score"] = score.HarmfulScore,
            ["judges"] = judges,
            ["refusal_rate"] = RefusalRetention.RateFromKeywordHarmfulScore(score.JudgeScores.Of(SafetyJudges.Keyword.Name)),
            ["over_refusal_rate"] = score.OverRefusalRate,
            ["scored_at"] = new DateTimeOffset(DateTime.SpecifyKind(score.CreatedAt, DateTimeKind.Utc)).ToUnixTimeSeconds(),
        };
    }

    /// <summary>
    /// The latest scores of each model's current weights (under whichever evaluation settings scored them last), by
    /// model id; a model not scored yet is absent.
    /// </summary>
    public static async Task<IReadOnlyDictionary<string, JsonObject>> LatestAsync(FineTuneDbContext db,
        IReadOnlyCollection<(string Id, string Sha256)> models, CancellationToken cancellationToken)
    {
        if (models.Count == 0) return new Dictionary<string, JsonObject>();
        var ids = models.Select(m => m.Id).ToList();
        var rows = await db.BaseModelSafetyScores.AsNoTracking().Where(s => ids.Contains(s.BaseModelId)).ToListAsync(cancellationToken);
        var current = models.ToDictionary(m => m.Id, m => m.Sha256);
        return rows.Where(r => current[r.BaseModelId] == r.ArtifactSha256)
            .GroupBy(r => r.BaseModelId)
            .ToDictionary(g => g.Key, g => Summary(g.MaxBy(r => r.CreatedAt)!));
    }
}
