namespace FineTuneService.Core.Domain;

/// <summary>The Hangfire queue a row is handed to (see <c>Outbox</c>).</summary>
public enum Dispatch { None, Training, FileValidation, FileScreening, SafetyEvaluation, Hardening }

/// <summary>
/// A row waiting to be put on a Hangfire queue. It is written in the same transaction as the change that needs the
/// work (a job queued, a file uploaded, an evaluation requested) and deleted once the enqueue succeeded, so a process
/// that dies between its commit and its enqueue leaves it here for the sweeper to send.
/// </summary>
public sealed class OutboxMessage
{
    public long Id { get; init; }
    public Dispatch Dispatch { get; init; }
    /// <summary>The job, file or evaluation id the queued work takes.</summary>
    public required string TargetId { get; init; }
    public DateTime CreatedAt { get; init; }
    /// <summary>When a sweeper last tried to send it; sweepers in several processes take turns through this stamp.</summary>
    public DateTime? AttemptedAt { get; set; }
}
