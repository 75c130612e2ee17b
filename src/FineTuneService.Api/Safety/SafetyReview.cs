using System.Security.Claims;
using FineTuneService.Api.Auth;
using FineTuneService.Api.Contracts;
using FineTuneService.Api.Errors;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Jobs;
using FineTuneService.Core.Safety;
using Microsoft.EntityFrameworkCore;

namespace FineTuneService.Api.Safety;

/// <summary>
/// An admin's decision on a model the safety gate held or failed: approve lists it to its tenant, reject keeps a held
/// one hidden. The one place this happens (both admin routes call it): the change is one of the state machine's
/// review transitions (<see cref="JobStateMachine.ApproveHeld"/>, <see cref="JobStateMachine.RejectHeld"/>,
/// <see cref="JobStateMachine.ApproveGateFailed"/>), and every decision is recorded as a <see cref="SafetyDecision"/>
/// (who, when, why) in the same transaction and announced on the job's timeline.
/// </summary>
internal static class SafetyReview
{
    public const int MaxReasonLength = 2000;

    /// <param name="reasonRequired">Whether this route requires a reason; overriding the gate's failure always does.</param>
    public static async Task<FineTuningJob> DecideAsync(FineTuneDbContext db, StateMachine states, ClaimsPrincipal admin, string jobId,
        bool approve, string? reason, string? reviewer, bool reasonRequired, CancellationToken cancellationToken)
    {
        var because = string.IsNullOrWhiteSpace(reason) ? null : reason.Trim();
        if (because is null && reasonRequired) throw ApiException.InvalidRequest("Missing required parameter: 'reason'.", "reason");
        if (because is { Length: > MaxReasonLength }) throw ApiException.InvalidRequest($"reason is at most {MaxReasonLength} characters.", "reason");

        var job = await db.Jobs.AsNoTracking().SingleOrDefaultAsync(j => j.Id == jobId, cancellationToken)
            ?? throw ApiException.NotFound("fine-tuning job", jobId);
        var gateFailed = FailedBySafetyGate(job);
        if (job.Review != ReviewState.Held && !(approve && gateFailed))
            throw ApiException.InvalidRequest(approve
                ? $"Only a model held for review or failed by the safety gate can be approved; this job is {JobStatusNames.Of(job.Status)} (review {ReviewNames.Of(job.Review)})."
                : $"The job's model is not held for review (review is {ReviewNames.Of(job.Review)}).", code: "invalid_state");
        if (because is null && gateFailed)
            throw ApiException.InvalidRequest("Overriding the safety gate's failure needs a reason: missing required parameter 'reason'.", "reason");

        var actor = admin.Actor(reviewer);
        var decided = $"Safety review: model {(approve ? "approved" : "rejected")} by {actor}";
        var transition = gateFailed
            ? JobStateMachine.ApproveGateFailed(new ModelNames(job).FineTunedModel,
                $"{decided} over the safety gate's failure: {because}; new fine-tuned model: {new ModelNames(job).FineTunedModel}")
            : approve
                ? JobStateMachine.ApproveHeld($"{decided}{(because is null ? "" : $": {because}")}")
                : JobStateMachine.RejectHeld($"{decided}{(because is null ? "" : $": {because}")}");
        var decision = new SafetyDecision
        {
            JobId = job.Id,
            TenantId = job.TenantId,
            Decision = approve ? SafetyDecisionKind.Approve : SafetyDecisionKind.Reject,
            Actor = actor,
            Reason = because,
        };
        if (!await states.TryAsync(db, job.Id, transition, cancellationToken, alsoWrite: (d, _) =>
            {
                d.SafetyDecisions.Add(decision);
                return Task.CompletedTask;
            }))
            throw ApiException.InvalidRequest("The job's review changed while this decision was made; read it again.", code: "invalid_state");
        return await db.Jobs.AsNoTracking().SingleAsync(j => j.Id == jobId, cancellationToken);
    }

    /// <summary>Failed by the gate (<c>unsafe_model</c>) with its weights kept, and not reviewed yet.</summary>
    private static bool FailedBySafetyGate(FineTuningJob job) =>
        job is { Status: JobStatus.Failed, ResultArtifactSha256: not null, FineTunedModel: null, Review: ReviewState.NotRequired }
        && job.Error?["code"]?.GetValue<string>() == SafetyGateDecision.UnsafeModel;
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
