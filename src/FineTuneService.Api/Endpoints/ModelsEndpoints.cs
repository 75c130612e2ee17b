using System.Security.Claims;
using FineTuneService.Api.Auth;
using FineTuneService.Api.Contracts;
using FineTuneService.Api.Errors;
using FineTuneService.Core.Data;
using FineTuneService.Core.Models;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace FineTuneService.Api.Endpoints;

/// <summary>OpenAI Models API: <c>/v1/models</c>.</summary>
public static class ModelsEndpoints
{
    public static IEndpointRouteBuilder MapModels(this IEndpointRouteBuilder routes)
    {
        var models = routes.MapGroup("/v1/models").RequireAuthorization(FtsClaims.TenantPolicy).WithTags("Models");
        models.MapGet("/", ListModels);
        models.MapGet("/{**modelId}", RetrieveModel);
        return routes;
    }

    /// <summary>
    /// List the models the caller may use: base models, its fine-tuned models (ft:{base}:{tenant}:{suffix}:{job}) and
    /// their epoch checkpoints (…:ckpt-step-N). Models held for safety review, rejected or deleted are not listed.
    /// </summary>
    internal static async Task<Ok<ListResponse<ModelObject>>> ListModels(ClaimsPrincipal user, FineTuneDbContext db, CancellationToken cancellationToken)
    {
        var models = (await ModelAccess.ListAsync(db, user.TenantId(), cancellationToken)).Select(ModelObject.From).ToList();
        return TypedResults.Ok(new ListResponse<ModelObject>(models, false, models.FirstOrDefault()?.Id, models.LastOrDefault()?.Id));
    }

    /// <summary>Retrieve one model; a model the caller may not use is a 404, as one that never existed.</summary>
    internal static async Task<Ok<ModelObject>> RetrieveModel(string modelId, ClaimsPrincipal user, FineTuneDbContext db, CancellationToken cancellationToken) =>
        TypedResults.Ok(ModelObject.From(await FindAsync(db, user, modelId, cancellationToken)));

    /// <summary>The model if the caller may use it, else the 404 <c>model_not_found</c> of an id that never existed.</summary>
    internal static async Task<UsableModel> FindAsync(FineTuneDbContext db, ClaimsPrincipal user, string modelId, CancellationToken cancellationToken) =>
        await ModelAccess.FindAsync(db, user.TenantId(), modelId, cancellationToken)
        ?? throw ApiException.ModelNotFound(modelId);
}
