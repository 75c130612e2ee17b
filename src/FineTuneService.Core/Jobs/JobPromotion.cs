using FineTuneService.Contracts.Jobs;
using System.Text.Json;
using System.Text.Json.Nodes;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Datasets.Jsonl;
using FineTuneService.Core.Models;
using Microsoft.EntityFrameworkCore;

namespace FineTuneService.Core.Jobs;

/// <summary>
/// Moves a job out of validating_files once its files are validated: to queued (and onto the gpu queue) when they
/// are all processed, to failed with the file's error when one is invalid. A <c>frozen_layers</c> job without a layer
/// range also waits for its base model's safety layers to be located (failed when the locator failed). Safe to call
/// any number of times, from job creation, file validation and the locator alike: only the call whose conditional
/// update wins acts.
/// </summary>
public sealed class JobPromotion(FineTuneDbContext db, StateMachine states, TimeProvider clock)
{
    /// <summary>Promotes every job waiting on <paramref name="fileId"/>.</summary>
    public async Task PromoteWaitingOnAsync(string fileId, CancellationToken cancellationToken)
    {
        var jobIds = await db.Jobs.AsNoTracking()
            .Where(j => j.Status == JobStatus.ValidatingFiles && (j.TrainingFileId == fileId || j.ValidationFileId == fileId))
            .Select(j => j.Id)
            .ToListAsync(cancellationToken);
        foreach (var jobId in jobIds) await PromoteAsync(jobId, cancellationToken);
    }

    /// <summary>Promotes every job waiting on base model <paramref name="modelId"/> (its safety layers are now known, or not locatable).</summary>
    public async Task PromoteWaitingOnModelAsync(string modelId, CancellationToken cancellationToken)
    {
        var jobIds = await db.Jobs.AsNoTracking()
            .Where(j => j.Status == JobStatus.ValidatingFiles && (j.RootModel ?? j.Model) == modelId)
            .Select(j => j.Id)
            .ToListAsync(cancellationToken);
        foreach (var jobId in jobIds) await PromoteAsync(jobId, cancellationToken);
    }

    public async Task PromoteAsync(string jobId, CancellationToken cancellationToken)
    {
        var job = await db.Jobs.AsNoTracking().SingleOrDefaultAsync(j => j.Id == jobId, cancellationToken);
        if (job is not { Status: JobStatus.ValidatingFiles }) return;

        var fileIds = new[] { job.TrainingFileId, job.ValidationFileId }.OfType<string>().ToList();
        var files = await db.Files.AsNoTracking().Where(f => f.TenantId == job.TenantId && fileIds.Contains(f.Id)).ToListAsync(cancellationToken);

        JsonObject? error = null;
        var pending = false;
        foreach (var (param, fileId) in new[] { ("training_file", job.TrainingFileId), ("validation_file", job.ValidationFileId) })
        {
            if (fileId is null) continue;
            var file = files.SingleOrDefault(f => f.Id == fileId);
            if (file is null || file.DeletedAt is not null)
                error ??= Error("file_not_found", $"The {param} {fileId} was deleted before the job started.", param);
            else if (file.Status == FileStatus.Error)
                error ??= Error(FirstErrorCode(file) ?? "invalid_file", $"The {param} {fileId} is invalid: {file.StatusDetails}", param);
            else if (file.Status is FileStatus.Uploaded or FileStatus.AwaitingScreening)
                pending = true;
            else if (FormatMismatch(file, param, IsPreferenceMethod(job)) is { } mismatch)
                error ??= Error(param == "training_file" ? "invalid_training_file" : "invalid_validation_file", mismatch, param);
        }

        if (LocatedSafetyLayers.AreNeededBy(job.Safety))
        {
            // Continued training freezes the root base model's layers (its row; a job made outside the API may name a
            // fine-tuned model without a root: its folder carries the base's safety_layers.json, or the worker says so).
            var root = job.RootModel ?? job.Model;
            var model = await db.BaseModels.AsNoTracking().Where(m => m.Id == root)
                .Select(m => new { m.SafetyLayersStatus, m.SafetyLayersError }).SingleOrDefaultAsync(cancellationToken);
            if (model?.SafetyLayersStatus == SafetyLayersStatus.Pending) pending = true;
            else if (model?.SafetyLayersStatus == SafetyLayersStatus.Failed)
                error ??= Error("invalid_safety_strategy",
                    $"{LocatedSafetyLayers.StrategyName} without a layer range needs the safety layers of {root}, which could not be located: {model.SafetyLayersError} "
                    + $"Give safety.params.{LocatedSafetyLayers.StrategyName}.first_layer and last_layer.", $"safety.params.{LocatedSafetyLayers.StrategyName}");
        }

        if (error is null && pending) return;
        var transition = error is null
            ? JobStateMachine.FilesValidated()
            : JobStateMachine.FilesInvalid(error, clock.GetUtcNow().UtcDateTime);
        await states.TryAsync(db, job.Id, transition, cancellationToken);
    }

    private static JsonObject Error(string code, string message, string param) =>
        new() { ["code"] = code, ["message"] = message, ["param"] = param };

    private static bool IsPreferenceMethod(FineTuningJob job) => job.Method.IsPreference;

    /// <summary>Why <paramref name="file"/> (a processed file) cannot train with the method, or null when its rows fit it.</summary>
    /// <param name="preference">The method trains on preference pairs (dpo).</param>
    public static string? FormatMismatch(StoredFile file, string param, bool preference) =>
        file.HoldsPreferencePairs == preference ? null
        : preference ? $"The {param} {file.Id} holds chat rows; method dpo trains on preference rows (input, preferred_output, non_preferred_output)."
        : $"The {param} {file.Id} holds preference rows (input, preferred_output, non_preferred_output); they train with method dpo, not supervised.";

    private static string? FirstErrorCode(StoredFile file) =>
        file.ValidationReport?["errors"] is JsonArray { Count: > 0 } errors ? errors[0]?["code"]?.GetValue<string>() : null;
}
