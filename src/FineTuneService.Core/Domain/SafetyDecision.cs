using System.Text.Json.Nodes;

namespace FineTuneService.Core.Domain;

/// <summary>What an admin (or the gate) decided; stored as its name.</summary>
public enum SafetyDecisionKind { Approve, Reject, Hold, Fail, PolicyChange }

/// <summary>Audit row for every safety decision: review approvals/rejections, gate outcomes and policy changes.</summary>
public sealed class SafetyDecision
{
    public Guid Id { get; init; } = Guid.NewGuid();
    /// <summary>The job decided on; null for policy changes.</summary>
    public string? JobId { get; init; }
    /// <summary>The tenant concerned (the job's, or the policy override's); null for the global policy.</summary>
    public string? TenantId { get; init; }
    public SafetyDecisionKind Decision { get; init; }
    /// <summary>Who: "admin:&lt;key prefix&gt;" (plus a name when given) or "gate" for automatic outcomes.</summary>
    public required string Actor { get; init; }
    public string? Reason { get; init; }
    /// <summary>Details: the policy before/after, the gate's report, …</summary>
    public JsonObject? Details { get; init; }
    public DateTime CreatedAt { get; init; }
}
