using System.Security.Claims;
using System.Text.Json;
using FineTuneService.Api.Auth;
using FineTuneService.Api.Contracts;
using FineTuneService.Api.Errors;
using FineTuneService.Api.Inference;
using FineTuneService.Core.Artifacts;
using FineTuneService.Core.Data;
using FineTuneService.Core.Models;
using FineTuneService.Core.Safety;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace FineTuneService.Api.Endpoints;

/// <summary>OpenAI Models API: <c>/v1/models</c>, plus the model download.</summary>
public static class ModelsEndpoints
{
    /// <summary><c>?format=</c> of the download: the whole model folder (default) or a LoRA job's PEFT adapter.</summary>
    public const string ModelFormat = "model";
    public const string AdapterFormat = "adapter";

    /// <summary>The file a download adds beside the weights: what the service measured about the model.</summary>
    public const string SafetyReportFile = "safety_report.json";

    public static IEndpointRouteBuilder MapModels(this IEndpointRouteBuilder routes)
    {
        var models = routes.MapGroup("/v1/models").RequireAuthorization(FtsClaims.TenantPolicy).WithTags("Models");
        models.MapGet("/", ListModels);
        // Model ids carry ':' but never '/': the literal segment wins over the catch-all below.
        models.MapGet("/{modelId}/content", DownloadModel);
        models.MapGet("/{**modelId}", RetrieveModel);
        models.MapDelete("/{**modelId}", DeleteModel);
        return routes;
    }

    /// <summary>
    /// List the models the caller may use: base models, its fine-tuned models (ft:{base}:{tenant}:{suffix}:{job}) and
    /// their epoch checkpoints (…:ckpt-step-N). Models held for safety review, rejected or deleted are not listed.
    /// </summary>
    internal static async Task<Ok<ListResponse<ModelObject>>> ListModels(ClaimsPrincipal user, FineTuneDbContext db, CancellationToken cancellationToken)
    {
        var usable = await ModelAccess.ListAsync(db, user.TenantId(), cancellationToken);
        var scores = await BaseScoresAsync(db, usable, cancellationToken);
        var models = usable.Select(m => ModelObject.From(m, scores.GetValueOrDefault(m.Id))).ToList();
        return TypedResults.Ok(new ListResponse<ModelObject>(models, false, models.FirstOrDefault()?.Id, models.LastOrDefault()?.Id));
    }

    /// <summary>Retrieve one model; a model the caller may not use is a 404, as one that never existed.</summary>
    internal static async Task<Ok<ModelObject>> RetrieveModel(string modelId, ClaimsPrincipal user, FineTuneDbContext db, CancellationToken cancellationToken)
    {
        var model = await FindAsync(db, user, modelId, cancellationToken);
        var scores = await BaseScoresAsync(db, [model], cancellationToken);
        return TypedResults.Ok(ModelObject.From(model, scores.GetValueOrDefault(model.Id)));
    }

    /// <summary>The base models' registration scores (fine-tuned models carry theirs on their job).</summary>
    private static Task<IReadOnlyDictionary<string, System.Text.Json.Nodes.JsonObject>> BaseScoresAsync(FineTuneDbContext db,
        IReadOnlyList<UsableModel> models, CancellationToken cancellationToken) =>
        BaseModelScores.LatestAsync(db, models.Where(m => m.Kind == ModelKind.Base).Select(m => (m.Id, m.WeightsSha256)).ToList(), cancellationToken);

    /// <summary>
    /// Download a model as a tar archive of its Hugging Face folder, streamed: <c>config.json</c>,
    /// <c>model.safetensors</c> (or shards with their index), <c>generation_config.json</c>, the tokenizer files
    /// (<c>tokenizer_config.json</c> carries the chat template) and <c>safety_report.json</c>. It loads in
    /// <c>transformers</c> and vLLM after <c>tar -xf</c>. <c>?format=adapter</c> gives a LoRA-trained model's PEFT adapter
    /// instead (<c>adapter_config.json</c>, <c>adapter_model.safetensors</c>), for vLLM's <c>--lora-modules</c>.
    /// </summary>
    /// <param name="format">"model" (default) or "adapter".</param>
    internal static async Task<PushStreamHttpResult> DownloadModel(string modelId, string? format, ClaimsPrincipal user,
        FineTuneDbContext db, IArtifactStore artifacts, IOptions<JsonOptions> json, CancellationToken cancellationToken)
    {
        var model = await FindAsync(db, user, modelId, cancellationToken);
        var fileName = DownloadName(model.Id);
        switch (format ?? ModelFormat)
        {
            case AdapterFormat:
                var adapterSha = model.AdapterSha256
                    ?? throw ApiException.InvalidRequest($"The model '{model.Id}' was not trained with a LoRA adapter; download it without format=adapter.", "format");
                var adapter = await OpenAsync(artifacts, adapterSha, cancellationToken);
                return TypedResults.Stream(async body =>
                {
                    await using (adapter) await adapter.CopyToAsync(body, cancellationToken);
                }, "application/x-tar", $"{fileName}-adapter.tar");

            case ModelFormat:
                var report = JsonSerializer.SerializeToUtf8Bytes(await SafetyReportAsync(db, model, cancellationToken), json.Value.SerializerOptions);
                var bundle = await OpenAsync(artifacts, model.WeightsSha256, cancellationToken);
                return TypedResults.Stream(async body =>
                {
                    await using (bundle)
                        await ModelArchive.WriteAsync(bundle, new Dictionary<string, byte[]> { [SafetyReportFile] = report }, body, cancellationToken);
                }, "application/x-tar", $"{fileName}.tar");

            default:
                throw ApiException.InvalidRequest($"format must be '{ModelFormat}' or '{AdapterFormat}'.", "format");
        }
    }

    /// <summary>
    /// Delete one of the caller's fine-tuned models, with its checkpoint models. From then on it is gone for every
    /// use (retrieve, chat, download, training) and its weights are collected once nothing else needs them; the job
    /// and its result files stay. Base models are shared and cannot be deleted with a tenant key.
    /// </summary>
    internal static async Task<Ok<ModelDeleted>> DeleteModel(string modelId, ClaimsPrincipal user, FineTuneDbContext db,
        ModelRoutes routes, TimeProvider time, CancellationToken cancellationToken)
    {
        var model = await FindAsync(db, user, modelId, cancellationToken);
        switch (model.Kind)
        {
            case ModelKind.Base:
                throw new ApiException(StatusCodes.Status403Forbidden,
                    $"The base model '{model.Id}' is shared by every tenant and cannot be deleted with a tenant key.",
                    "invalid_request_error", "model", "model_not_deletable");
            case ModelKind.Checkpoint:
                throw ApiException.InvalidRequest(
                    $"'{model.Id}' is a checkpoint of a fine-tuned model; it is deleted with that model.", "model", "model_not_deletable");
        }

        var now = time.GetUtcNow().UtcDateTime;
        var strategy = db.Database.CreateExecutionStrategy();
        var deleted = await strategy.ExecuteAsync(async ct =>
        {
            await using var transaction = await db.Database.BeginTransactionAsync(ct);
            // Conditional, so of two concurrent deletes one answers 404 like any later one.
            var rows = await db.Jobs.Where(j => j.Id == model.JobId && j.ModelDeletedAt == null)
                .ExecuteUpdateAsync(set => set.SetProperty(j => j.ModelDeletedAt, now), ct);
            if (rows == 1) await db.JobCheckpoints.Where(c => c.JobId == model.JobId).ExecuteDeleteAsync(ct);
            await transaction.CommitAsync(ct);
            return rows == 1;
        }, cancellationToken);
        routes.Forget(user.TenantId(), model.Id);
        return deleted ? TypedResults.Ok(new ModelDeleted(model.Id, true)) : throw ApiException.ModelNotFound(modelId);
    }

    /// <summary>The model if the caller may use it, else the 404 <c>model_not_found</c> of an id that never existed.</summary>
    internal static async Task<UsableModel> FindAsync(FineTuneDbContext db, ClaimsPrincipal user, string modelId, CancellationToken cancellationToken) =>
        await ModelAccess.FindAsync(db, user.TenantId(), modelId, cancellationToken)
        ?? throw ApiException.ModelNotFound(modelId);

    /// <summary>The job's safety object and every stage report of the weights it produced.</summary>
    private static async Task<ModelSafetyReport> SafetyReportAsync(FineTuneDbContext db, UsableModel model, CancellationToken cancellationToken)
    {
        if (model.JobId is null)
            return new ModelSafetyReport(model.Id, "base", null, null, null,
                "A base model: its scores are measured once when its weights are registered (safety_scores of GET /v1/models/{model}), reused as the base stage of every job on it; or use POST /v1/safety/evaluations.",
                null, []);
        var job = await db.Jobs.AsNoTracking().SingleAsync(j => j.Id == model.JobId, cancellationToken);
        var reports = await db.SafetyReports.AsNoTracking().Where(r => r.JobId == job.Id).OrderBy(r => r.Sequence).ToListAsync(cancellationToken);
        var note = model.Kind == ModelKind.Checkpoint
            ? $"The weights at step {model.CheckpointStep}. The scores below were measured on the job's base model and final model, not on this checkpoint."
            : null;
        return new ModelSafetyReport(model.Id, model.Kind == ModelKind.Checkpoint ? "checkpoint" : "fine_tuned", job.Id, job.Model,
            model.CheckpointStep, note, FineTuningJobObject.From(job).Safety, reports.Select(SafetyReportObject.From).ToList());
    }

    private static async Task<Stream> OpenAsync(IArtifactStore artifacts, string sha256, CancellationToken cancellationToken) =>
        await artifacts.OpenReadAsync(sha256, cancellationToken)
        ?? throw new InvalidOperationException($"Model weights {sha256} are missing from the artifact store.");

    /// <summary>A file name without the id's ':' (awkward on Windows and in shells).</summary>
    private static string DownloadName(string modelId) =>
        new(modelId.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_').ToArray());
}
