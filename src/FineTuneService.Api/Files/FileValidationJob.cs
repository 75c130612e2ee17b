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
    FineTuneDbContext db, IArtifactStore artifacts, JobPromotion promotion, IJobScheduler scheduler,
    IOptions<FilesOptions> options, ILogger<FileValidationJob> logger)
    : IFileValidationJob
{
    private static readonly JsonSerializerOptions ReportJson = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
    private const int ErrorsInStatusDetails = 5;

    public async Task RunAsync(string fileId, CancellationToken cancellationToken)
    {
        var file = await db.Files.SingleOrDefaultAsync(f => f.Id == fileId, cancellationToken);
        if (file is null) return;

        if (file is { Status: FileStatus.Uploaded, Purpose: FilesEndpoints.EvalsPurpose })
        {
            var prompts = await ValidatePromptSetAsync(file, cancellationToken);
            file.Status = prompts.IsValid ? FileStatus.Processed : FileStatus.Error;
            file.StatusDetails = prompts.IsValid ? null : prompts.Summary(ErrorsInStatusDetails);
            file.ValidationReport = new JsonObject
            {
                ["format"] = "prompts",
                ["example_count"] = prompts.Prompts.Count,
                ["error_count"] = prompts.ErrorCount,
                ["errors"] = JsonSerializer.SerializeToNode(prompts.Errors, ReportJson),
                ["is_valid"] = prompts.IsValid,
            };
            await db.SaveChangesAsync(cancellationToken);
            return; // no job trains on a prompt set
        }

        if (file.Status == FileStatus.Uploaded)
        {
            var report = await ValidateAsync(file, cancellationToken);
            var screen = report.IsValid && options.Value.ScreenTrainingData;
            file.Status = !report.IsValid ? FileStatus.Error : screen ? FileStatus.Uploaded : FileStatus.Processed;
            file.StatusDetails = report.IsValid ? null : Summary(report);
            file.ValidationReport = JsonSerializer.SerializeToNode(report, ReportJson)!.AsObject();
            if (screen) file.ValidationReport["screening"] = new JsonObject { ["status"] = "pending" };
            await db.SaveChangesAsync(cancellationToken);
            logger.LogInformation("File {FileId} validated: {Status}, {Examples} examples, {Errors} errors",
                fileId, file.Status, report.ExampleCount, report.ErrorCount);
            // Jobs keep waiting: the screening job promotes them. A repeated delivery screens again, which is harmless.
            if (screen) scheduler.EnqueueFileScreening(fileId);
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

    /// <summary>OpenAI's status_details is one string: the error count and the first line-numbered errors.</summary>
    private static string Summary(DatasetValidationReport report) => DatasetIssue.Summary(report.ErrorCount, report.Errors, ErrorsInStatusDetails);
}
