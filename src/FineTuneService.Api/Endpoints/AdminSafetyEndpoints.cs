using System.Security.Claims;
using System.Text.Json.Nodes;
using FineTuneService.Api.Auth;
using FineTuneService.Api.Contracts;
using FineTuneService.Api.Errors;
using FineTuneService.Api.Safety;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Jobs;
using FineTuneService.Core.Safety;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace FineTuneService.Api.Endpoints;

/// <summary>
/// Safety review for admins (admin key only): every tenant's jobs with their scores, one job's stage reports with
/// samples, approving or rejecting held models, the gate policy (global and per tenant), and the audit trail of decisions.
/// </summary>
public static class AdminSafetyEndpoints
{
    public const string Tag = "Admin: Safety";

    public static IEndpointRouteBuilder MapAdminSafety(this IEndpointRouteBuilder routes)
    {
        var safety = routes.MapGroup("/v1/admin/safety").RequireAuthorization(FtsClaims.AdminPolicy).WithTags(Tag);
        safety.MapGet("/jobs", ListSafetyJobs);
        safety.MapGet("/jobs/{jobId}", RetrieveSafetyJob);
        safety.MapPost("/jobs/{jobId}/approve", ApproveHeldModel);
        safety.MapPost("/jobs/{jobId}/reject", RejectHeldModel);
        safety.MapGet("/policy", RetrieveGlobalPolicy);
        safety.MapPut("/policy", ReplaceGlobalPolicy);
        safety.MapGet("/policy/tenants", ListTenantPolicies);
        safety.MapGet("/policy/tenants/{tenantId}", RetrieveTenantPolicy);
        safety.MapPut("/policy/tenants/{tenantId}", ReplaceTenantPolicy);
        safety.MapDelete("/policy/tenants/{tenantId}", DeleteTenantPolicy);
        safety.MapGet("/decisions", ListSafetyDecisions);
        return routes;
    }

    /// <summary>List every tenant's fine-tuning jobs with their safety scores, riskiest first when sorted by score.</summary>
    /// <remarks>
    /// Scores come from the job's stored stage reports: harmful_score is the final stage's (by the gate's judge),
    /// harmful_score_increase its rise over the base model. Jobs not scored yet have null scores and sort last.
    /// </remarks>
    /// <param name="tenant">Only this tenant's jobs.</param>
    /// <param name="review">held, approved, rejected or not_required.</param>
    /// <param name="gate">The gate's outcome: passed, failed, held, or none (not scored).</param>
    /// <param name="minHs">Only jobs whose final harmful score is at least this (percent).</param>
    /// <param name="sort">created_at (default), hs or hs_increase; always descending.</param>
    /// <param name="after">Cursor: the last job id of the previous page (same filters and sort).</param>
    /// <param name="limit">1 to 100, default 20.</param>
    internal static async Task<Ok<ListResponse<AdminSafetyJobObject>>> ListSafetyJobs(
        FineTuneDbContext db, string? tenant, string? review, string? gate, [FromQuery(Name = "min_hs")] double? minHs,
        string? sort, string? after, int? limit, CancellationToken cancellationToken)
    {
        var take = Paging.Limit(limit);
        var jobs = db.Jobs.AsNoTracking();
        if (tenant is not null) jobs = jobs.Where(j => j.TenantId == tenant);
        if (ReviewNames.Parse(review) is { } state) jobs = jobs.Where(j => j.Review == state);
        var outcome = new JsonObject { ["gate"] = new JsonObject { ["decision"] = gate } };
        jobs = gate switch
        {
            null => jobs,
            "none" => jobs.Where(j => j.SafetyScores == null || !EF.Functions.JsonExists(j.SafetyScores, "gate")),
            // jsonb containment (@>) on the gate verdict the worker stored in job.safety.scores
            "passed" or "failed" or "held" => jobs.Where(j => j.SafetyScores != null && EF.Functions.JsonContains(j.SafetyScores, outcome)),
            _ => throw ApiException.InvalidRequest($"Unknown gate outcome '{gate}': use passed, failed, held or none.", "gate"),
        };
        if (minHs is < 0 or > 100) throw ApiException.InvalidRequest("min_hs must be between 0 and 100.", "min_hs");

        var scored = Scored(db, jobs);
        if (minHs is not null) scored = scored.Where(s => s.HarmfulScore >= minHs);
        ScoredJob? cursor = null;
        if (after is not null)
            cursor = await Scored(db, db.Jobs.AsNoTracking()).SingleOrDefaultAsync(s => s.Job.Id == after, cancellationToken)
                ?? throw ApiException.NotFound("fine-tuning job", after, "after");

        switch (sort)
        {
            case null or "created_at":
                if (cursor is not null)
                    scored = scored.Where(s => s.Job.CreatedAt < cursor.Job.CreatedAt
                                               || (s.Job.CreatedAt == cursor.Job.CreatedAt && string.Compare(s.Job.Id, cursor.Job.Id) < 0));
                scored = scored.OrderByDescending(s => s.Job.CreatedAt).ThenByDescending(s => s.Job.Id);
                break;
            case "hs":
                if (cursor is not null)
                {
                    var key = cursor.HarmfulScore ?? Unscored;
                    scored = scored.Where(s => (s.HarmfulScore ?? Unscored) < key
                                               || ((s.HarmfulScore ?? Unscored) == key && string.Compare(s.Job.Id, cursor.Job.Id) < 0));
                }
                scored = scored.OrderByDescending(s => s.HarmfulScore ?? Unscored).ThenByDescending(s => s.Job.Id);
                break;
            case "hs_increase":
                if (cursor is not null)
                {
                    var key = cursor.HarmfulScore - cursor.BaseHarmfulScore ?? Unscored;
                    scored = scored.Where(s => (s.HarmfulScore - s.BaseHarmfulScore ?? Unscored) < key
                                               || ((s.HarmfulScore - s.BaseHarmfulScore ?? Unscored) == key && string.Compare(s.Job.Id, cursor.Job.Id) < 0));
                }
                scored = scored.OrderByDescending(s => s.HarmfulScore - s.BaseHarmfulScore ?? Unscored).ThenByDescending(s => s.Job.Id);
                break;
            default:
                throw ApiException.InvalidRequest($"Unknown sort '{sort}': use created_at, hs or hs_increase.", "sort");
        }

        var rows = await scored.Take(take + 1).ToListAsync(cancellationToken);
        return TypedResults.Ok(ListResponse.Page(rows.Select(s => s.ToObject()).ToList(), take, j => j.Id));
    }

    /// <summary>Open one job's safety review: the gate's verdict, every stage's report with samples, and the decisions on it.</summary>
    internal static async Task<Ok<AdminSafetyJobDetail>> RetrieveSafetyJob(string jobId, FineTuneDbContext db, CancellationToken cancellationToken)
    {
        var job = await Scored(db, db.Jobs.AsNoTracking()).SingleOrDefaultAsync(s => s.Job.Id == jobId, cancellationToken)
            ?? throw ApiException.NotFound("fine-tuning job", jobId);
        var reports = await db.SafetyReports.AsNoTracking().Where(r => r.JobId == jobId).OrderBy(r => r.Sequence).ToListAsync(cancellationToken);
        var decisions = await db.SafetyDecisions.AsNoTracking().Where(d => d.JobId == jobId).OrderBy(d => d.CreatedAt).ToListAsync(cancellationToken);
        return TypedResults.Ok(new AdminSafetyJobDetail(job.ToObject(), job.Job.SafetyScores?["gate"]?.DeepClone().AsObject(),
            reports.Select(SafetyReportObject.From).ToList(), decisions.Select(SafetyDecisionObject.From).ToList()));
    }

    /// <summary>
    /// Approve a model held for review, or one the safety gate failed (its weights are kept): it is listed to its tenant,
    /// and a gate-failed job becomes succeeded with its model named. The reason is required and recorded with who and when.
    /// </summary>
    internal static async Task<Ok<FineTuningJobObject>> ApproveHeldModel(
        string jobId, SafetyReviewRequest request, ClaimsPrincipal user, FineTuneDbContext db, StateMachine states,
        CancellationToken cancellationToken) =>
        TypedResults.Ok(FineTuningJobObject.From(
            await SafetyReview.DecideAsync(db, states, user, jobId, approve: true, request.Reason, request.Reviewer, reasonRequired: true, cancellationToken)));

    /// <summary>Reject a model held for review: it stays hidden from its tenant. The reason is required and recorded with who and when.</summary>
    internal static async Task<Ok<FineTuningJobObject>> RejectHeldModel(
        string jobId, SafetyReviewRequest request, ClaimsPrincipal user, FineTuneDbContext db, StateMachine states,
        CancellationToken cancellationToken) =>
        TypedResults.Ok(FineTuningJobObject.From(
            await SafetyReview.DecideAsync(db, states, user, jobId, approve: false, request.Reason, request.Reviewer, reasonRequired: true, cancellationToken)));

    /// <summary>The global safety policy: its values and the values in effect (built-in defaults fill what it leaves null).</summary>
    internal static async Task<Ok<SafetyPolicyObject>> RetrieveGlobalPolicy(FineTuneDbContext db, CancellationToken cancellationToken)
    {
        var global = await SafetyPolicyChanges.GlobalAsync(db, cancellationToken);
        return TypedResults.Ok(SafetyPolicyObject.From(global, null, SafetyPolicyResolver.Resolve(global, null)));
    }

    /// <summary>Replace the global safety policy (every tenant without an override follows it); recorded as a policy decision.</summary>
    internal static async Task<Ok<SafetyPolicyObject>> ReplaceGlobalPolicy(
        SafetyPolicyRequest request, ClaimsPrincipal user, FineTuneDbContext db, CancellationToken cancellationToken)
    {
        var global = await SafetyPolicyChanges.ReplaceAsync(db, user, tenantId: null, request, cancellationToken);
        return TypedResults.Ok(SafetyPolicyObject.From(global, null, SafetyPolicyResolver.Resolve(global, null)));
    }

    /// <summary>List the tenants' policy overrides with the values in effect for each.</summary>
    internal static async Task<Ok<ListResponse<SafetyPolicyObject>>> ListTenantPolicies(FineTuneDbContext db, CancellationToken cancellationToken)
    {
        var global = await SafetyPolicyChanges.GlobalAsync(db, cancellationToken);
        var overrides = await db.SafetyPolicies.AsNoTracking().Where(p => p.TenantId != null).OrderBy(p => p.TenantId).ToListAsync(cancellationToken);
        var data = overrides.Select(p => SafetyPolicyObject.From(p, p.TenantId, SafetyPolicyResolver.Resolve(global, p))).ToList();
        return TypedResults.Ok(new ListResponse<SafetyPolicyObject>(data, false, data.FirstOrDefault()?.OrganizationId, data.LastOrDefault()?.OrganizationId));
    }

    /// <summary>One tenant's policy: its override (all null when it has none) and the values in effect.</summary>
    internal static async Task<Ok<SafetyPolicyObject>> RetrieveTenantPolicy(string tenantId, FineTuneDbContext db, CancellationToken cancellationToken)
    {
        await SafetyPolicyChanges.RequireTenantAsync(db, tenantId, cancellationToken);
        var global = await SafetyPolicyChanges.GlobalAsync(db, cancellationToken);
        var row = await db.SafetyPolicies.AsNoTracking().SingleOrDefaultAsync(p => p.TenantId == tenantId, cancellationToken);
        return TypedResults.Ok(SafetyPolicyObject.From(row, tenantId, SafetyPolicyResolver.Resolve(global, row)));
    }

    /// <summary>Create or replace a tenant's policy override (null fields follow the global policy); recorded as a policy decision.</summary>
    internal static async Task<Ok<SafetyPolicyObject>> ReplaceTenantPolicy(
        string tenantId, SafetyPolicyRequest request, ClaimsPrincipal user, FineTuneDbContext db, CancellationToken cancellationToken)
    {
        await SafetyPolicyChanges.RequireTenantAsync(db, tenantId, cancellationToken);
        var row = await SafetyPolicyChanges.ReplaceAsync(db, user, tenantId, request, cancellationToken);
        var global = await SafetyPolicyChanges.GlobalAsync(db, cancellationToken);
        return TypedResults.Ok(SafetyPolicyObject.From(row, tenantId, SafetyPolicyResolver.Resolve(global, row)));
    }

    /// <summary>Remove a tenant's override: it follows the global policy again. Recorded as a policy decision.</summary>
    /// <param name="reason">Why (optional); recorded with the change.</param>
    internal static async Task<Ok<SafetyPolicyObject>> DeleteTenantPolicy(
        string tenantId, string? reason, ClaimsPrincipal user, FineTuneDbContext db, CancellationToken cancellationToken)
    {
        await SafetyPolicyChanges.RequireTenantAsync(db, tenantId, cancellationToken);
        await SafetyPolicyChanges.RemoveOverrideAsync(db, user, tenantId, reason, cancellationToken);
        var global = await SafetyPolicyChanges.GlobalAsync(db, cancellationToken);
        return TypedResults.Ok(SafetyPolicyObject.From(null, tenantId, SafetyPolicyResolver.Resolve(global, null)));
    }

    /// <summary>The audit trail, newest first: review decisions, gate holds and failures, policy changes.</summary>
    /// <param name="jobId">Only decisions on this job.</param>
    /// <param name="tenant">Only decisions concerning this tenant.</param>
    /// <param name="decision">approve, reject, hold, fail or policy_change.</param>
    /// <param name="after">Cursor: the last decision id of the previous page.</param>
    /// <param name="limit">1 to 100, default 20.</param>
    internal static async Task<Ok<ListResponse<SafetyDecisionObject>>> ListSafetyDecisions(
        FineTuneDbContext db, [FromQuery(Name = "job_id")] string? jobId, string? tenant, string? decision, string? after, int? limit,
        CancellationToken cancellationToken)
    {
        var take = Paging.Limit(limit);
        var query = db.SafetyDecisions.AsNoTracking();
        if (jobId is not null) query = query.Where(d => d.JobId == jobId);
        if (tenant is not null) query = query.Where(d => d.TenantId == tenant);
        if (decision is not null)
        {
            var kind = Enum.GetValues<SafetyDecisionKind>().Cast<SafetyDecisionKind?>().FirstOrDefault(k => SafetyNames.Of(k!.Value) == decision)
                ?? throw ApiException.InvalidRequest($"Unknown decision '{decision}': use approve, reject, hold, fail or policy_change.", "decision");
            query = query.Where(d => d.Decision == kind);
        }
        if (after is not null)
        {
            var cursor = (Guid.TryParse(after, out var id) ? await db.SafetyDecisions.AsNoTracking().SingleOrDefaultAsync(d => d.Id == id, cancellationToken) : null)
                ?? throw ApiException.NotFound("safety decision", after, "after");
            query = query.Where(d => d.CreatedAt < cursor.CreatedAt || (d.CreatedAt == cursor.CreatedAt && d.Id.CompareTo(cursor.Id) < 0));
        }
        var rows = await query.OrderByDescending(d => d.CreatedAt).ThenByDescending(d => d.Id).Take(take + 1).ToListAsync(cancellationToken);
        return TypedResults.Ok(ListResponse.Page(rows.Select(SafetyDecisionObject.From).ToList(), take, d => d.Id));
    }

    /// <summary>Sort key of jobs without a score: below every real score and rise (both are within ±100).</summary>
    private const double Unscored = -1000;

    /// <summary>Jobs with the scalar scores of their base (sequence 0) and final (highest sequence) stage reports.</summary>
    private static IQueryable<ScoredJob> Scored(FineTuneDbContext db, IQueryable<FineTuningJob> jobs) =>
        jobs.Select(j => new ScoredJob
        {
            Job = j,
            HarmfulScore = db.SafetyReports.Where(r => r.JobId == j.Id && r.Sequence > 0).OrderByDescending(r => r.Sequence).Select(r => r.HarmfulScore).FirstOrDefault(),
            Judge = db.SafetyReports.Where(r => r.JobId == j.Id && r.Sequence > 0).OrderByDescending(r => r.Sequence).Select(r => r.Judge).FirstOrDefault(),
            OverRefusalRate = db.SafetyReports.Where(r => r.JobId == j.Id && r.Sequence > 0).OrderByDescending(r => r.Sequence).Select(r => r.OverRefusalRate).FirstOrDefault(),
            BaseHarmfulScore = db.SafetyReports.Where(r => r.JobId == j.Id && r.Sequence == 0).Select(r => r.HarmfulScore).FirstOrDefault(),
        });

    private sealed class ScoredJob
    {
        public required FineTuningJob Job { get; init; }
        public double? HarmfulScore { get; init; }
        public string? Judge { get; init; }
        public double? OverRefusalRate { get; init; }
        public double? BaseHarmfulScore { get; init; }

        public AdminSafetyJobObject ToObject() => new(
            Job.Id, Job.TenantId, Job.Model, Job.FineTunedModel, JobStatusNames.Of(Job.Status), ReviewNames.Of(Job.Review),
            Job.SafetyScores?["gate"]?["decision"]?.GetValue<string>(), Judge, HarmfulScore, BaseHarmfulScore,
            HarmfulScore - BaseHarmfulScore is { } rise ? Math.Round(rise, 4) : null, OverRefusalRate,
            UnixTime.Seconds(Job.CreatedAt), UnixTime.Seconds(Job.FinishedAt));
    }
}
