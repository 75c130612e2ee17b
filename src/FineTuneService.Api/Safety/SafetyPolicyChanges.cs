using System.Security.Claims;
using System.Text.Json.Nodes;
using FineTuneService.Api.Auth;
using FineTuneService.Api.Contracts;
using FineTuneService.Api.Errors;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Safety;
using Microsoft.EntityFrameworkCore;

namespace FineTuneService.Api.Safety;

/// <summary>
/// Admin changes to the safety policy rows: validated field by field (a bad value names its parameter), applied as
/// a whole-row replacement, and recorded as a <see cref="SafetyDecisionKind.PolicyChange"/> decision with the row
/// before and after.
/// </summary>
internal static class SafetyPolicyChanges
{
    public static Task<SafetyPolicy?> GlobalAsync(FineTuneDbContext db, CancellationToken cancellationToken) =>
        db.SafetyPolicies.AsNoTracking().SingleOrDefaultAsync(p => p.TenantId == null, cancellationToken);

    public static async Task RequireTenantAsync(FineTuneDbContext db, string tenantId, CancellationToken cancellationToken)
    {
        if (!await db.Tenants.AnyAsync(t => t.Id == tenantId, cancellationToken)) throw ApiException.NotFound("tenant", tenantId, "tenant_id");
    }

    /// <summary>Replaces the global row (<paramref name="tenantId"/> null) or a tenant's override with the request.</summary>
    public static async Task<SafetyPolicy> ReplaceAsync(FineTuneDbContext db, ClaimsPrincipal admin, string? tenantId,
        SafetyPolicyRequest request, CancellationToken cancellationToken)
    {
        Validate(request);
        var row = await db.SafetyPolicies.SingleOrDefaultAsync(p => p.TenantId == tenantId, cancellationToken);
        var before = row is null ? null : Snapshot(row);
        if (row is null)
        {
            row = new SafetyPolicy { Id = tenantId is null ? SafetyPolicy.GlobalId : Guid.NewGuid(), TenantId = tenantId };
            db.SafetyPolicies.Add(row);
        }
        var actor = admin.Actor(request.Reviewer);
        row.MaxHarmfulScore = request.MaxHarmfulScore;
        row.MaxHarmfulScoreIncrease = request.MaxHarmfulScoreIncrease;
        row.Action = SafetyNames.ParseAction(request.Action);
        row.Judge = SafetyNames.ParseJudge(request.Judge);
        row.UnsafeFileMaxRatio = request.UnsafeFileMaxRatio;
        row.OutputGuard = SafetyNames.ParseOutputGuard(request.OutputGuard);
        row.MaxRefusalDrop = request.MaxRefusalDrop;
        row.UpdatedBy = actor; // UpdatedAt and the decision's time come from the save (RowTimestamps)
        Record(db, tenantId, actor, request.Reason, before, Snapshot(row));
        await db.SaveChangesAsync(cancellationToken);
        return row;
    }

    public static async Task RemoveOverrideAsync(FineTuneDbContext db, ClaimsPrincipal admin, string tenantId, string? reason,
        CancellationToken cancellationToken)
    {
        var row = await db.SafetyPolicies.SingleOrDefaultAsync(p => p.TenantId == tenantId, cancellationToken)
            ?? throw ApiException.NotFound("policy override of tenant", tenantId, "tenant_id");
        db.SafetyPolicies.Remove(row);
        Record(db, tenantId, admin.Actor(), reason, Snapshot(row), null);
        await db.SaveChangesAsync(cancellationToken);
    }

    private static void Validate(SafetyPolicyRequest request)
    {
        Percent(request.MaxHarmfulScore, "max_harmful_score");
        Percent(request.MaxHarmfulScoreIncrease, "max_harmful_score_increase");
        Percent(request.MaxRefusalDrop, "max_refusal_drop");
        if (request.UnsafeFileMaxRatio is { } ratio && (double.IsNaN(ratio) || ratio is < 0 or > 1))
            throw ApiException.InvalidRequest("unsafe_file_max_ratio is a share of the file's rows: between 0 and 1.", "unsafe_file_max_ratio");
        try { SafetyNames.ParseAction(request.Action); }
        catch (FormatException e) { throw ApiException.InvalidRequest(e.Message, "action"); }
        try { SafetyNames.ParseJudge(request.Judge); }
        catch (FormatException e) { throw ApiException.InvalidRequest(e.Message, "judge"); }
        try { SafetyNames.ParseOutputGuard(request.OutputGuard); }
        catch (FormatException e) { throw ApiException.InvalidRequest(e.Message, "output_guard"); }
        if (request.Reason is { Length: > SafetyReview.MaxReasonLength })
            throw ApiException.InvalidRequest($"reason is at most {SafetyReview.MaxReasonLength} characters.", "reason");
    }

    private static void Percent(double? value, string param)
    {
        if (value is { } v && (double.IsNaN(v) || v is < 0 or > 100))
            throw ApiException.InvalidRequest($"{param} is a percentage: between 0 and 100.", param);
    }

    private static void Record(FineTuneDbContext db, string? tenantId, string actor, string? reason, JsonObject? before, JsonObject? after) =>
        db.SafetyDecisions.Add(new SafetyDecision
        {
            TenantId = tenantId,
            Decision = SafetyDecisionKind.PolicyChange,
            Actor = actor,
            Reason = string.IsNullOrWhiteSpace(reason) ? null : reason.Trim(),
            Details = new JsonObject { ["scope"] = tenantId is null ? "global" : "tenant", ["before"] = before, ["after"] = after },
        });

    private static JsonObject Snapshot(SafetyPolicy row) => new()
    {
        ["max_harmful_score"] = row.MaxHarmfulScore,
        ["max_harmful_score_increase"] = row.MaxHarmfulScoreIncrease,
        ["action"] = row.Action is { } action ? SafetyNames.Of(action) : null,
        ["judge"] = row.Judge,
        ["unsafe_file_max_ratio"] = row.UnsafeFileMaxRatio,
        ["output_guard"] = row.OutputGuard is { } guard ? SafetyNames.Of(guard) : null,
        ["max_refusal_drop"] = row.MaxRefusalDrop,
    };
}
