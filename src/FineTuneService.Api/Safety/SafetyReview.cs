using System.Security.Claims;
using FineTuneService.Api.Auth;
using FineTuneService.Api.Errors;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Jobs;
using Microsoft.EntityFrameworkCore;

namespace FineTuneService.Api.Safety;

/// <summary>
/// An admin's decision on a model the safety gate held: approve lists it to its tenant, reject keeps it hidden. The
/// one place this happens (both admin routes call it): the review state changes only from held, and every decision is
/// recorded as a <see cref="SafetyDecision"/> (who, when, why) and announced on the job's timeline.
/// </summary>
internal static class SafetyReview
{
    public const int MaxReasonLength = 2000;

    public static async Task<FineTuningJob> DecideAsync(FineTuneDbContext db, ClaimsPrincipal admin, string jobId, bool approve,
        string? reason, string? reviewer, bool reasonRequired, CancellationToken cancellationToken)
    {
        var because = string.IsNullOrWhiteSpace(reason) ? null : reason.Trim();
        if (because is null && reasonRequired) throw ApiException.InvalidRequest("Missing required parameter: 'reason'.", "reason");
        if (because is { Length: > MaxReasonLength }) throw ApiException.InvalidRequest($"reason is at most {MaxReasonLength} characters.", "reason");

        var job = await db.Jobs.SingleOrDefaultAsync(j => j.Id == jobId, cancellationToken) ?? throw ApiException.NotFound("fine-tuning job", jobId);
        if (job.Review != ReviewState.Held)
            throw ApiException.InvalidRequest(
                $"The job's model is not held for review (review is {ReviewNames.Of(job.Review)}).", code: "invalid_state");

        var actor = admin.Actor(reviewer);
        job.Review = approve ? ReviewState.Approved : ReviewState.Rejected;
        db.SafetyDecisions.Add(new SafetyDecision
        {
            JobId = job.Id,
            TenantId = job.TenantId,
            Decision = approve ? SafetyDecisionKind.Approve : SafetyDecisionKind.Reject,
            Actor = actor,
            Reason = because,
        });
        db.JobEvents.Add(JobEvents.Message(job.Id,
            $"Safety review: model {(approve ? "approved" : "rejected")} by {actor}{(because is null ? "" : $": {because}")}"));
        await db.SaveChangesAsync(cancellationToken);
        return job;
    }
}

/// <summary>Wire names of <see cref="ReviewState"/>.</summary>
internal static class ReviewNames
{
    public static string Of(ReviewState review) => review switch
    {
        ReviewState.Held => "held",
        ReviewState.Approved => "approved",
        ReviewState.Rejected => "rejected",
        _ => "not_required",
    };

    public static ReviewState? Parse(string? value) => value switch
    {
        null => null,
        "held" => ReviewState.Held,
        "approved" => ReviewState.Approved,
        "rejected" => ReviewState.Rejected,
        "not_required" => ReviewState.NotRequired,
        _ => throw ApiException.InvalidRequest($"Unknown review state '{value}': use held, approved, rejected or not_required.", "review"),
    };
}
