using System.Security.Claims;
using FineTuneService.Api.Auth;
using FineTuneService.Api.Contracts;
using FineTuneService.Api.Errors;
using FineTuneService.Api.Safety;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Jobs;
using FineTuneService.Core.Models;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace FineTuneService.Api.Endpoints;

/// <summary>Admin API (admin key only): tenants, all jobs across tenants, safety review, base model import.</summary>
public static class AdminEndpoints
{
    public static IEndpointRouteBuilder MapAdmin(this IEndpointRouteBuilder routes)
    {
        var admin = routes.MapGroup("/v1/admin").RequireAuthorization(FtsClaims.AdminPolicy).WithTags("Admin");
        admin.MapPost("/tenants", CreateTenant);
        admin.MapGet("/tenants", ListTenants);
        admin.MapGet("/fine_tuning/jobs", ListAllFineTuningJobs);
        admin.MapPost("/fine_tuning/jobs/{jobId}/review", ReviewFineTuningJob);
        admin.MapPost("/models/import", ImportBaseModels);
        return routes;
    }

    /// <summary>Create a tenant and its API key. The key is in this answer only: store it now.</summary>
    internal static async Task<Created<TenantObject>> CreateTenant(CreateTenantRequest request, FineTuneDbContext db, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(request.Name) || request.Name.Length > 200)
            throw ApiException.InvalidRequest("name is required (at most 200 characters).", "name");
        var tenant = new Tenant { Id = Ids.Tenant(), Name = request.Name.Trim() };
        var (row, key) = ApiKeys.Issue(tenant.Id);
        tenant.Keys.Add(row);
        db.Tenants.Add(tenant);
        await db.SaveChangesAsync(cancellationToken);
        return TypedResults.Created($"/v1/admin/tenants/{tenant.Id}", new TenantObject(tenant.Id, tenant.Name, UnixTime.Seconds(tenant.CreatedAt), key));
    }

    /// <summary>List tenants (keys are never shown again).</summary>
    internal static async Task<Ok<ListResponse<TenantObject>>> ListTenants(FineTuneDbContext db, CancellationToken cancellationToken)
    {
        var tenants = await db.Tenants.AsNoTracking().OrderBy(t => t.CreatedAt).ToListAsync(cancellationToken);
        var data = tenants.Select(t => new TenantObject(t.Id, t.Name, UnixTime.Seconds(t.CreatedAt), null)).ToList();
        return TypedResults.Ok(new ListResponse<TenantObject>(data, false, data.FirstOrDefault()?.Id, data.LastOrDefault()?.Id));
    }

    /// <summary>List every tenant's fine-tuning jobs, newest first.</summary>
    /// <param name="after">Cursor: the last job id of the previous page.</param>
    /// <param name="limit">1 to 100, default 20.</param>
    internal static async Task<Ok<ListResponse<FineTuningJobObject>>> ListAllFineTuningJobs(
        FineTuneDbContext db, string? after, int? limit, CancellationToken cancellationToken)
    {
        var take = Paging.Limit(limit);
        var cursor = after is null ? null
            : await db.Jobs.AsNoTracking().SingleOrDefaultAsync(j => j.Id == after, cancellationToken) ?? throw ApiException.NotFound("fine-tuning job", after, "after");
        var rows = await db.Jobs.AsNoTracking().InCreationOrder(cursor).Take(take + 1).ToListAsync(cancellationToken);
        return TypedResults.Ok(ListResponse.Page(rows.Select(FineTuningJobObject.From).ToList(), take, j => j.Id));
    }

    /// <summary>Decide on a model held for safety review: {"decision": "approve"} lists it to its tenant, "reject" keeps it hidden.
    /// The decision, the admin key's prefix, the optional reviewer name and reason are recorded as a safety decision
    /// (the same as POST /v1/admin/safety/jobs/{jobId}/approve or /reject, where the reason is required).</summary>
    internal static async Task<Ok<FineTuningJobObject>> ReviewFineTuningJob(
        string jobId, ReviewDecisionRequest request, ClaimsPrincipal user, FineTuneDbContext db, StateMachine states,
        CancellationToken cancellationToken)
    {
        var approve = request.Decision switch
        {
            "approve" => true,
            "reject" => false,
            _ => throw ApiException.InvalidRequest("decision must be 'approve' or 'reject'.", "decision"),
        };
        var job = await SafetyReview.DecideAsync(db, states, user, jobId, approve, request.Reason, request.Reviewer, reasonRequired: false, cancellationToken);
        return TypedResults.Ok(FineTuningJobObject.From(job));
    }

    /// <summary>Import the model folders under Models:Directory now (changed ones only); returns the ids imported.</summary>
    internal static async Task<Ok<IReadOnlyList<string>>> ImportBaseModels(
        BaseModelRegistry registry, IOptions<ModelsOptions> options, IHostEnvironment environment, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(options.Value.Directory))
            throw ApiException.InvalidRequest("Models:Directory is not configured.");
        var directory = Path.GetFullPath(options.Value.Directory, environment.ContentRootPath);
        return TypedResults.Ok(await registry.ImportDirectoryAsync(directory, cancellationToken));
    }
}

/// <summary>Body of the admin review endpoint: decision "approve" or "reject", an optional reason and reviewer name.</summary>
public sealed record ReviewDecisionRequest(string Decision, string? Reason = null, string? Reviewer = null);
