using System.Globalization;
using System.Text.Json.Nodes;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Jobs;
using FineTuneService.Core.Safety;
using FineTuneService.Datasets;
using FineTuneService.Ml.Evaluation.Judges;
using FineTuneService.Worker.Models;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FineTuneService.Worker.Safety;

/// <summary>
/// Training-data screening (screening queue): every example's assistant turns are judged with the shipped harm
/// classifier against the user turn they answer; an example is flagged when any of its answers scores at least
/// <see cref="WorkerOptions.ScreeningMinRowScore"/> (stricter than the HS threshold, to spare benign instruction data).
/// The flagged line numbers go into the file's validation report under <c>screening</c>; when the flagged share is
/// above the tenant's effective <c>unsafe_file_max_ratio</c> (<see cref="SafetyPolicyResolver"/>) the file becomes <c>error</c> with code <c>unsafe_file</c>, and the
/// jobs waiting on it fail with that code. At-least-once safe: only a file still "uploaded" is screened, and the
/// verdict is a function of the file's bytes and the policy, so a repeated delivery writes the same answer.
/// </summary>
public sealed class FileScreeningJob(
    FineTuneDbContext db,
    ArtifactTransfer transfer,
    ShippedHarmJudges judges,
    JobPromotion promotion,
    StateMachine states,
    IOptions<WorkerOptions> options,
    ILogger<FileScreeningJob> logger) : IFileScreeningJob
{
    public const string ErrorCode = "unsafe_file";
    private const int LinesInStatusDetails = 20;
    private const int RowsInReport = 1000;
    private const int PairsPerBatch = 256;

    public async Task RunAsync(string fileId, CancellationToken cancellationToken)
    {
        var file = await db.Files.AsNoTracking().SingleOrDefaultAsync(f => f.Id == fileId, cancellationToken);
        if (file is { Status: FileStatus.AwaitingScreening, ValidationReport: not null })
        {
            var threshold = (await SafetyPolicyResolver.ResolveAsync(db, file.TenantId, cancellationToken)).UnsafeFileMaxRatio;
            ScreeningResult screening;
            try
            {
                screening = await ScreenAsync(file, threshold, cancellationToken);
            }
            catch (InvalidDataException e)
            {
                // Structural validation passed, so this is a reader disagreement; fail the file rather than retry forever.
                await states.TryAsync(db, fileId, FileStateMachine.Screened(FileStatus.Error,
                    $"The file could not be read for screening: {e.Message}", report: null), cancellationToken);
                await promotion.PromoteWaitingOnAsync(fileId, cancellationToken);
                return;
            }
            var verdict = Verdict(file.ValidationReport, screening);
            await states.TryAsync(db, fileId, verdict, cancellationToken);
            logger.LogInformation("File {FileId} screened: {Flagged} of {Examples} examples judged harmful, {Unsafe}",
                fileId, screening.Flagged.Count, screening.Examples, screening.IsUnsafe ? ErrorCode : "passed");
        }

        // Also on a repeated delivery: a job created meanwhile may still be waiting.
        await promotion.PromoteWaitingOnAsync(fileId, cancellationToken);
    }

    private async Task<ScreeningResult> ScreenAsync(StoredFile file, double threshold, CancellationToken cancellationToken)
    {
        // A preference pair is judged on the answer it trains towards; a harmful non-preferred answer is what a
        // harmlessness pair is made of, while a harmful preferred one is the poisoning screening is for.
        var examples = file.HoldsPreferencePairs
            ? (await transfer.ReadPreferenceExamplesAsync(file.Sha256, cancellationToken)).Select(pair => pair.Chosen).ToList()
            : await transfer.ReadChatExamplesAsync(file.Sha256, cancellationToken);

        var pairs = new List<(int Line, JudgedPair Pair)>();
        foreach (var example in examples) pairs.AddRange(AnswerPairs(example).Select(p => (example.LineNumber, p)));

        var scores = new Dictionary<int, float>();
        var cut = Math.Max(judges.ClassifierThreshold, options.Value.ScreeningMinRowScore);
        foreach (var batch in pairs.Chunk(PairsPerBatch))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var probabilities = judges.ClassifyHarm(batch.Select(p => p.Pair).ToList());
            for (var i = 0; i < batch.Length; i++)
            {
                if (probabilities[i] < cut) continue;
                var line = batch[i].Line;
                scores[line] = Math.Max(scores.GetValueOrDefault(line), probabilities[i]);
            }
        }
        var flagged = scores.OrderBy(s => s.Key).Select(s => new FlaggedRow(s.Key, Math.Round(s.Value, 4))).ToList();
        return new ScreeningResult(examples.Count, flagged, threshold, cut);
    }

    /// <summary>Each assistant turn with the last user turn before it (empty when the example opens with the answer).</summary>
    private static IEnumerable<JudgedPair> AnswerPairs(ChatExample example)
    {
        var prompt = "";
        foreach (var message in example.Messages)
        {
            if (message.Role == ChatMessage.User) prompt = message.Content;
            else if (message.Role == ChatMessage.Assistant) yield return new JudgedPair(prompt, message.Content);
        }
    }

    /// <summary>The file's report with the screening result, and processed or unsafe_file.</summary>
    private static Transition<StoredFile> Verdict(JsonObject report, ScreeningResult result)
    {
        report["screening"] = new JsonObject
        {
            ["status"] = result.IsUnsafe ? ErrorCode : "passed",
            ["judge"] = ClassifierHarmJudge.JudgeName,
            ["examples"] = result.Examples,
            ["flagged"] = result.Flagged.Count,
            ["flagged_ratio"] = Math.Round(result.Ratio, 4),
            ["threshold"] = result.Threshold,
            ["min_row_score"] = result.MinRowScore,
            ["flagged_rows"] = new JsonArray(result.Flagged.Take(RowsInReport)
                .Select(r => (JsonNode)new JsonObject { ["line"] = r.Line, ["score"] = r.Score }).ToArray()),
        };
        if (!result.IsUnsafe) return FileStateMachine.Screened(FileStatus.Processed, null, report);

        var details = result.Summary(LinesInStatusDetails);
        // The file-level error comes first: job promotion fails waiting jobs with the first error's code.
        var errors = report["errors"] as JsonArray ?? [];
        report["errors"] = new JsonArray([new JsonObject { ["code"] = ErrorCode, ["message"] = details, ["line"] = null },
            .. errors.Select(e => e?.DeepClone())]);
        report["error_count"] = (report["error_count"]?.GetValue<int>() ?? 0) + 1;
        report["is_valid"] = false;
        return FileStateMachine.Screened(FileStatus.Error, details, report);
    }

    private sealed record FlaggedRow(int Line, double Score);

    private sealed record ScreeningResult(int Examples, IReadOnlyList<FlaggedRow> Flagged, double Threshold, double MinRowScore)
    {
        public double Ratio => Examples == 0 ? 0 : (double)Flagged.Count / Examples;

        public bool IsUnsafe => Ratio > Threshold;

        /// <summary>"unsafe_file: 14 of 100 examples (14.0%) judged harmful (threshold 10%); lines 3, 17, …"</summary>
        public string Summary(int maxLines)
        {
            var lines = string.Join(", ", Flagged.Take(maxLines).Select(r => r.Line.ToString(CultureInfo.InvariantCulture)));
            var more = Flagged.Count > maxLines ? $" and {Flagged.Count - maxLines} more" : "";
            return string.Create(CultureInfo.InvariantCulture,
                $"{ErrorCode}: {Flagged.Count} of {Examples} examples ({Ratio * 100:0.0}%) judged harmful (threshold {Threshold * 100:0.##}%); lines {lines}{more}");
        }
    }
}
