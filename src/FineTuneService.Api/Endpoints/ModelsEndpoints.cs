using System.Security.Claims;
using FineTuneService.Api.Auth;
using FineTuneService.Api.Contracts;
using FineTuneService.Api.Errors;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Inference;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace FineTuneService.Api.Endpoints;

/// <summary>OpenAI Models API: <c>/v1/models</c>.</summary>
public static class ModelsEndpoints
{
    public const string SystemOwner = "system";

    public static IEndpointRouteBuilder MapModels(this IEndpointRouteBuilder routes)
    {
        var models = routes.MapGroup("/v1/models").RequireAuthorization(FtsClaims.TenantPolicy).WithTags("Models");
        models.MapGet("/", ListModels);
        models.MapGet("/{**modelId}", RetrieveModel);
        return routes;
    }

    /// <summary>List base models and the caller's fine-tuned models (ft:{base}:{tenant}:{suffix}:{job}); models held for safety review are hidden.</summary>
    internal static async Task<Ok<ListResponse<ModelObject>>> ListModels(ClaimsPrincipal user, FineTuneDbContext db, CancellationToken cancellationToken)
    {
        var models = await AllAsync(db, user.TenantId(), cancellationToken);
        return TypedResults.Ok(new ListResponse<ModelObject>(models, false, models.FirstOrDefault()?.Id, models.LastOrDefault()?.Id));
    }

    /// <summary>Retrieve one model.</summary>
    internal static async Task<Ok<ModelObject>> RetrieveModel(string modelId, ClaimsPrincipal user, FineTuneDbContext db, CancellationToken cancellationToken)
    {
        var tenantId = user.TenantId();
        var model = await db.BaseModels.AsNoTracking().Where(m => m.Id == modelId)
                        .Select(m => new { m.Id, m.CreatedAt, Owner = SystemOwner }).SingleOrDefaultAsync(cancellationToken)
                    ?? await VisibleFineTunedModels(db, tenantId).Where(j => j.FineTunedModel == modelId)
                        .Select(j => new { Id = j.FineTunedModel!, CreatedAt = j.FinishedAt ?? j.CreatedAt, Owner = j.TenantId })
                        .FirstOrDefaultAsync(cancellationToken)
                    ?? throw ApiException.NotFound("model", modelId, "model");
        return TypedResults.Ok(new ModelObject(model.Id, UnixTime.Seconds(model.CreatedAt), model.Owner));
    }

    /// <inheritdoc cref="ServableModels.VisibleFineTunedJobs"/>
    internal static IQueryable<FineTuningJob> VisibleFineTunedModels(FineTuneDbContext db, string tenantId) =>
        ServableModels.VisibleFineTunedJobs(db, tenantId);

    private static async Task<List<ModelObject>> AllAsync(FineTuneDbContext db, string tenantId, CancellationToken cancellationToken)
    {
        var baseModels = await db.BaseModels.AsNoTracking().OrderBy(m => m.Id).ToListAsync(cancellationToken);
        var fineTuned = await VisibleFineTunedModels(db, tenantId).OrderByDescending(j => j.FinishedAt).ToListAsync(cancellationToken);
        return
        [
            .. baseModels.Select(m => new ModelObject(m.Id, UnixTime.Seconds(m.CreatedAt), SystemOwner)),
            .. fineTuned.Select(j => new ModelObject(j.FineTunedModel!, UnixTime.Seconds(j.FinishedAt ?? j.CreatedAt), j.TenantId)),
        ];
    }
}
