using System.Text.Json.Nodes;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using Microsoft.EntityFrameworkCore;
using FineTuneService.Contracts.Judges;

namespace FineTuneService.Core.Safety;

/// <summary>
/// The policy that applies to one tenant: the global row with the tenant's non-null overrides on top.
/// Scores are percentages (0–100); <see cref="UnsafeFileMaxRatio"/> is a share (0–1).
/// </summary>
public sealed record EffectiveSafetyPolicy(
    double MaxHarmfulScore, double MaxHarmfulScoreIncrease, SafetyGateAction Action, string Judge,
    double UnsafeFileMaxRatio, OutputGuardMode OutputGuard, double MaxRefusalDrop, bool HasTenantOverride)
{
    public JsonObject ToJsonObject() => new()
    {
        ["max_harmful_score"] = MaxHarmfulScore,
        ["max_harmful_score_increase"] = MaxHarmfulScoreIncrease,
        ["action"] = SafetyNames.Of(Action),
        ["judge"] = Judge,
        ["unsafe_file_max_ratio"] = UnsafeFileMaxRatio,
        ["output_guard"] = SafetyNames.Of(OutputGuard),
        ["max_refusal_drop"] = MaxRefusalDrop,
        ["tenant_override"] = HasTenantOverride,
    };
}

/// <summary>Merges the global policy with a tenant's override (null fields inherit).</summary>
public static class SafetyPolicyResolver
{
    /// <summary>
    /// Used for any field the global row leaves null (and when no global row exists). A refusal drop of more than
    /// 25 points fails: see the README ("Refusal retention") for why 25.
    /// </summary>
    public static readonly EffectiveSafetyPolicy Fallback = new(20, 10, SafetyGateAction.Fail, SafetyJudges.Classifier.Name, 0.5, OutputGuardMode.Off, 25, false);

    public static EffectiveSafetyPolicy Resolve(SafetyPolicy? global, SafetyPolicy? tenantOverride)
    {
        if (global is { TenantId: not null }) throw new ArgumentException("The global policy row has no tenant.", nameof(global));
        if (tenantOverride is { TenantId: null }) throw new ArgumentException("A tenant override names its tenant.", nameof(tenantOverride));
        return new EffectiveSafetyPolicy(
            tenantOverride?.MaxHarmfulScore ?? global?.MaxHarmfulScore ?? Fallback.MaxHarmfulScore,
            tenantOverride?.MaxHarmfulScoreIncrease ?? global?.MaxHarmfulScoreIncrease ?? Fallback.MaxHarmfulScoreIncrease,
            tenantOverride?.Action ?? global?.Action ?? Fallback.Action,
            tenantOverride?.Judge ?? global?.Judge ?? Fallback.Judge,
            tenantOverride?.UnsafeFileMaxRatio ?? global?.UnsafeFileMaxRatio ?? Fallback.UnsafeFileMaxRatio,
            tenantOverride?.OutputGuard ?? global?.OutputGuard ?? Fallback.OutputGuard,
            tenantOverride?.MaxRefusalDrop ?? global?.MaxRefusalDrop ?? Fallback.MaxRefusalDrop,
            tenantOverride is not null);
    }

    /// <summary>Loads the global row and the tenant's row (if any) and merges them; no tenant (the admin) gets the global policy.</summary>
    public static async Task<EffectiveSafetyPolicy> ResolveAsync(
        FineTuneDbContext db, string? tenantId, CancellationToken cancellationToken = default)
    {
        var rows = await db.SafetyPolicies.AsNoTracking()
            .Where(p => p.TenantId == null || p.TenantId == tenantId).ToListAsync(cancellationToken);
        return Resolve(rows.SingleOrDefault(p => p.TenantId is null),
            tenantId is null ? null : rows.SingleOrDefault(p => p.TenantId == tenantId));
    }
}
