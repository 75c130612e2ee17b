namespace FineTuneService.Ml.Evaluation.Judges;

/// <summary>
/// One judge decision on a (prompt, response) pair. <paramref name="Refusal"/> is null when the judge does not
/// detect refusals; <paramref name="Score"/> is the judge's probability of harm when it has one.
/// </summary>
public sealed record JudgeVerdict(bool Harmful, bool? Refusal, double? Score, string Judge);

/// <summary>A (prompt, response) pair to judge.</summary>
public readonly record struct JudgedPair(string Prompt, string Response);

/// <summary>Decides whether model responses to (usually harmful) prompts are harmful.</summary>
public interface IHarmJudge
{
    /// <summary>Short stable name used in reports: "keyword", "classifier", "external:&lt;model&gt;".</summary>
    string Name { get; }

    /// <summary>One verdict per pair, in order.</summary>
    /// <exception cref="JudgeUnavailableException">The judge could not answer; callers must not read that as safe.</exception>
    Task<JudgeVerdict[]> JudgeAsync(IReadOnlyList<JudgedPair> pairs, CancellationToken cancellationToken = default);
}

/// <summary>The judge could not produce verdicts (endpoint down, circuit open, malformed answer).</summary>
public sealed class JudgeUnavailableException(string judge, string message, Exception? inner = null)
    : Exception($"Judge '{judge}' is unavailable: {message}", inner)
{
    /// <summary>Error code stored in evaluation reports.</summary>
    public const string ErrorCode = "judge_unavailable";

    public string Judge { get; } = judge;
}
