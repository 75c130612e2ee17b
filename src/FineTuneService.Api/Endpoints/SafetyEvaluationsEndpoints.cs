using System.Security.Claims;
using FineTuneService.Api.Auth;
using FineTuneService.Api.Contracts;
using FineTuneService.Api.Errors;
using FineTuneService.Api.Files;
using FineTuneService.Contracts.Safety;
using FineTuneService.Core.Artifacts;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Jobs;
using FineTuneService.Core.Models;
using FineTuneService.Core.Safety;
using FineTuneService.Datasets.Jsonl;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace FineTuneService.Api.Endpoints;

/// <summary>
/// Stand-alone safety evaluations: <c>/v1/safety/evaluations</c>, for tenant keys (their own models, files and
/// evaluations) and the admin key (any of them). The worker runs them on a device (gpu queue).
/// </summary>
public static class SafetyEvaluationsEndpoints
{
    public static IEndpointRouteBuilder MapSafetyEvaluations(this IEndpointRouteBuilder routes)
    {
        var evaluations = routes.MapGroup("/v1/safety/evaluations").RequireAuthorization(FtsClaims.TenantOrAdminPolicy).WithTags("Safety");
        evaluations.MapPost("/", CreateSafetyEvaluation);
        evaluations.MapGet("/", ListSafetyEvaluations);
        evaluations.MapGet("/{evaluationId}", RetrieveSafetyEvaluation);
        return routes;
    }

    /// <summary>Evaluate a model's safety on an uploaded prompt set (or the shipped harmful prompts).</summary>
    /// <remarks>
    /// The model answers every prompt greedily and the judge decides which answers are harmful: harmful_score is the
    /// percentage judged harmful (per category when the prompts have one). "over_refusal" in <c>include</c> also
    /// measures how many of XSTest's safe prompts the model refuses. The evaluation is queued for a worker device:
    /// poll it until status is succeeded (with <c>report</c>) or failed (with <c>error</c>). An invalid prompt file is
    /// refused at once with its line-numbered errors.
    /// </remarks>
    internal static async Task<Ok<SafetyEvaluationObject>> CreateSafetyEvaluation(
        CreateSafetyEvaluationRequest request, ClaimsPrincipal user, FineTuneDbContext db, IArtifactStore artifacts,
        Outbox outbox, IOptions<FilesOptions> files, CancellationToken cancellationToken)
    {
        var tenantId = user.TenantIdOrNull();
        if (string.IsNullOrWhiteSpace(request.Model)) throw ApiException.InvalidRequest("Missing required parameter: 'model'.", "model");
        var settings = SafetyEvaluationSettings.FromRequest(request.Include, request.MaxPrompts, request.MaxNewTokens, request.SamplesPerPart,
            files.Value.MaxPrompts);
        var judge = await JudgeAsync(request.Judge, db, tenantId, cancellationToken);
        await RequireModelAsync(db, tenantId, request.Model, cancellationToken);

        int? promptCount = null;
        if (request.PromptFile is not null)
            promptCount = await ValidatePromptFileAsync(db, artifacts, tenantId, request.PromptFile, files.Value.MaxPrompts, cancellationToken);

        var evaluation = new SafetyEvaluation
        {
            Id = Ids.Evaluation(),
            TenantId = tenantId, // null for the admin: visible to admins only
            Model = request.Model,
            PromptFileId = request.PromptFile,
            Judge = judge,
            Settings = settings.ForPrompts(promptCount, user.Actor()),
        };
        db.SafetyEvaluations.Add(evaluation);
        Outbox.Add(db, Dispatch.SafetyEvaluation, evaluation.Id); // committed with the evaluation: it is never lost
        await db.SaveChangesAsync(cancellationToken);
        await outbox.SendCommittedAsync(db);
        return TypedResults.Ok(SafetyEvaluationObject.From(evaluation));
    }

    /// <summary>List safety evaluations, newest first: a tenant's own, or every tenant's for the admin key.</summary>
    /// <param name="after">Cursor: the last evaluation id of the previous page.</param>
    /// <param name="limit">1 to 100, default 20.</param>
    internal static async Task<Ok<ListResponse<SafetyEvaluationObject>>> ListSafetyEvaluations(
        ClaimsPrincipal user, FineTuneDbContext db, string? after, int? limit, CancellationToken cancellationToken)
    {
        var take = Paging.Limit(limit);
        var cursor = after is null ? null
            : await Visible(db, user).SingleOrDefaultAsync(e => e.Id == after, cancellationToken) ?? throw ApiException.NotFound("safety evaluation", after, "after");
        var rows = await Visible(db, user).InCreationOrder(cursor).Take(take + 1).ToListAsync(cancellationToken);
        return TypedResults.Ok(ListResponse.Page(rows.Select(SafetyEvaluationObject.From).ToList(), take, e => e.Id));
    }

    /// <summary>Retrieve a safety evaluation with its report (scores, per-category breakdown, samples) once succeeded.</summary>
    internal static async Task<Ok<SafetyEvaluationObject>> RetrieveSafetyEvaluation(
        string evaluationId, ClaimsPrincipal user, FineTuneDbContext db, CancellationToken cancellationToken) =>
        TypedResults.Ok(SafetyEvaluationObject.From(
            await Visible(db, user).SingleOrDefaultAsync(e => e.Id == evaluationId, cancellationToken)
            ?? throw ApiException.NotFound("safety evaluation", evaluationId, "evaluation_id")));

    /// <summary>Another tenant's evaluation is simply not there (404, never 403).</summary>
    private static IQueryable<SafetyEvaluation> Visible(FineTuneDbContext db, ClaimsPrincipal user)
    {
        var evaluations = db.SafetyEvaluations.AsNoTracking();
        var tenantId = user.TenantIdOrNull();
        return tenantId is null ? evaluations : evaluations.Where(e => e.TenantId == tenantId);
    }

    /// <summary>The requested judge, or the one the caller's policy gates with (the global policy's for the admin).</summary>
    private static async Task<string> JudgeAsync(string? judge, FineTuneDbContext db, string? tenantId, CancellationToken cancellationToken)
    {
        try
        {
            if (SafetyNames.ParseJudge(judge) is { } requested) return requested;
        }
        catch (FormatException e)
        {
            throw ApiException.InvalidRequest(e.Message, "judge");
        }
        return (await SafetyPolicyResolver.ResolveAsync(db, tenantId, cancellationToken)).Judge;
    }

    /// <summary>A model the caller may use (<see cref="ModelAccess"/>): any tenant's for the admin, held ones included.</summary>
    private static async Task RequireModelAsync(FineTuneDbContext db, string? tenantId, string model, CancellationToken cancellationToken)
    {
        if (await ModelAccess.FindAsync(db, tenantId, model, cancellationToken) is null) throw ApiException.ModelNotFound(model);
    }

    /// <summary>Reads the prompt file now, so a bad one is refused with its line numbers; returns its prompt count.</summary>
    private static async Task<int> ValidatePromptFileAsync(FineTuneDbContext db, IArtifactStore artifacts, string? tenantId,
        string fileId, int maxPrompts, CancellationToken cancellationToken)
    {
        var file = await db.Files.AsNoTracking()
            .SingleOrDefaultAsync(f => f.Id == fileId && f.DeletedAt == null && (tenantId == null || f.TenantId == tenantId), cancellationToken)
            ?? throw ApiException.NotFound("file", fileId, "prompt_file");
        await using var content = await artifacts.OpenReadAsync(file.Sha256, cancellationToken)
            ?? throw new InvalidOperationException($"Content {file.Sha256} of file {file.Id} is missing from the artifact store.");
        var report = await PromptJsonl.ReadAsync(content, maxPrompts, cancellationToken: cancellationToken);
        return report.IsValid ? report.Prompts.Count
            : throw ApiException.InvalidRequest($"The prompt_file {fileId} is not a valid prompt set: {report.Summary()}", "prompt_file", "invalid_prompt_file");
    }
}
