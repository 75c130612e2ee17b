using System.Text.Json;
using System.Text.Json.Nodes;
using FineTuneService.Api.Endpoints;
using FineTuneService.Core.Artifacts;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Jobs;
using FineTuneService.Datasets.Jsonl;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace FineTuneService.Api.Files;

/// <summary>
/// Hangfire job (default queue, run by the API's own server): validates an uploaded file by streaming it from the
/// artifact store, records the line-numbered report and the processed/error status, then releases or fails the
/// jobs that were waiting on the file. A structurally valid file stays "uploaded" and goes on to harm screening in the
/// worker host (<see cref="IFileScreeningJob"/>), which decides processed or unsafe_file.
/// </summary>
internal sealed class FileValidationJob(
    FineTuneDbContext db, IArtifactStore artifacts, JobPromotion promotion, StateMachine states,
    IOptions<FilesOptions> options, ILogger<FileValidationJob> logger)
    : IFileValidationJob
{
    private static readonly JsonSerializerOptions ReportJson = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
    private const int ErrorsInStatusDetails = 5;

    public async Task RunAsync(string fileId, CancellationToken cancellationToken)
    {
        var file = await db.Files.AsNoTracking().SingleOrDefaultAsync(f => f.Id == fileId, cancellationToken);
        if (file is null) return;

        if (file is { Status: FileStatus.Uploaded, Purpose: FilesEndpoints.EvalsPurpose })
        {
            var prompts = await ValidatePromptSetAsync(file, cancellationToken);
            await states.TryAsync(db, fileId, FileStateMachine.Validated(
                prompts.IsValid ? FileStatus.Processed : FileStatus.Error,
                prompts.IsValid ? null : prompts.Summary(ErrorsInStatusDetails),
                new JsonObject
                {
                    ["format"] = "prompts",
                    ["example_count"] = prompts.Prompts.Count,
                    ["error_count"] = prompts.ErrorCount,
                    ["errors"] = JsonSerializer.SerializeToNode(prompts.Errors, ReportJson),
                    ["is_valid"] = prompts.IsValid,
                }), cancellationToken);
            return; // no job trains on a prompt set
        }

        if (file.Status == FileStatus.Uploaded)
        {
            var report = await ValidateAsync(file, cancellationToken);
            var json = JsonSerializer.SerializeToNode(report, ReportJson)!.AsObject();
            // Jobs keep waiting on a file that goes on to screening: the screening job promotes them.
            var transition = !report.IsValid ? FileStateMachine.Validated(FileStatus.Error, Summary(report), json)
                : options.Value.ScreenTrainingData ? FileStateMachine.AwaitScreening(WithPendingScreening(json))
                : FileStateMachine.Validated(FileStatus.Processed, null, json);
            if (await states.TryAsync(db, fileId, transition, cancellationToken))
                logger.LogInformation("File {FileId} validated: {Transition}, {Examples} examples, {Errors} errors",
                    fileId, transition.Name, report.ExampleCount, report.ErrorCount);
        }

        // Also on a repeated delivery: a job created meanwhile may still be waiting.
        await promotion.PromoteWaitingOnAsync(fileId, cancellationToken);
    }

    private async Task<DatasetValidationReport> ValidateAsync(StoredFile file, CancellationToken cancellationToken)
    {
        await using var content = await artifacts.OpenReadAsync(file.Sha256, cancellationToken)
            ?? throw new InvalidOperationException($"Content {file.Sha256} of file {file.Id} is missing from the artifact store.");
        // No tokenizer here (the API stays model-free): token counts are estimates; training re-checks exact lengths.
        return await DatasetValidator.ValidateAsync(content, tokenizer: null, options.Value.EffectiveLimits, cancellationToken);
    }

    private async Task<PromptFileReport> ValidatePromptSetAsync(StoredFile file, CancellationToken cancellationToken)
    {
        await using var content = await artifacts.OpenReadAsync(file.Sha256, cancellationToken)
            ?? throw new InvalidOperationException($"Content {file.Sha256} of file {file.Id} is missing from the artifact store.");
        return await PromptJsonl.ReadAsync(content, options.Value.MaxPrompts, cancellationToken: cancellationToken);
    }

    /// <summary>The report a tenant reads while screening runs (its status lives on the file: awaiting_screening).</summary>
    private static JsonObject WithPendingScreening(JsonObject report)
    {
        report["screening"] = new JsonObject { ["status"] = "pending" };
        return report;
    }

    /// <summary>OpenAI's status_details is one string: the error count and the first line-numbered errors.</summary>
    private static string Summary(DatasetValidationReport report) => DatasetIssue.Summary(report.ErrorCount, report.Errors, ErrorsInStatusDetails);
}
