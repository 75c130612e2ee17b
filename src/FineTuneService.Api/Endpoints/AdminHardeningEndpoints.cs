using FineTuneService.Api.Auth;
using FineTuneService.Api.Contracts;
using FineTuneService.Api.Errors;
using FineTuneService.Contracts.Safety.Hardening;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Jobs;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace FineTuneService.Api.Endpoints;

/// <summary>
/// Admin: hardening a base model into a new one (<c>POST /v1/admin/models/{base}/harden</c>) and the runs that do it
/// (<c>/v1/admin/hardening_runs</c>). A run is its own resource, held by a worker on the gpu queue like a safety
/// evaluation; it is not a fine-tuning job, which belongs to a tenant and produces a tenant's model.
/// </summary>
public static class AdminHardeningEndpoints
{
    private const string Tag = "Admin: Hardening";

    public static IEndpointRouteBuilder MapAdminHardening(this IEndpointRouteBuilder routes)
    {
        routes.MapPost("/v1/admin/models/{baseModel}/harden", HardenBaseModel)
            .RequireAuthorization(FtsClaims.AdminPolicy).WithTags(Tag);
        var runs = routes.MapGroup("/v1/admin/hardening_runs").RequireAuthorization(FtsClaims.AdminPolicy).WithTags(Tag);
        runs.MapGet("/", ListHardeningRuns);
        runs.MapGet("/{runId}", RetrieveHardeningRun);
        runs.MapGet("/{runId}/events", ListHardeningRunEvents);
        return routes;
    }

    /// <summary>Harden a base model into a new base model, {base}-{suffix}, listed to every tenant with its lineage.</summary>
    /// <remarks>
    /// The method runs on a worker device (gpu queue): poll the run until it is succeeded or failed, and read its
    /// events for progress. The new model is stored like any base model, its safety layers are located and its base
    /// scores (harmful score, refusals, over-refusal) measured once before the run succeeds. Refused at once (400 with
    /// <c>param</c>): an unknown method, a parameter out of bounds or of the wrong type, a bad suffix, a model of that
    /// name that exists or is being produced by another run.
    /// </remarks>
    /// <param name="baseModel">The base model to harden.</param>
    internal static async Task<Ok<HardeningRunObject>> HardenBaseModel(
        string baseModel, HardenModelRequest request, FineTuneDbContext db, Outbox outbox, CancellationToken cancellationToken)
    {
        var hardening = HardeningRequest.Parse(baseModel, request.Method, request.Params, request.Suffix);
        if (!await db.BaseModels.AnyAsync(m => m.Id == baseModel, cancellationToken)) throw ApiException.ModelNotFound(baseModel);
        if (hardening.HardenedModel.Length > MaxModelIdLength)
            throw ApiException.InvalidRequest($"{hardening.HardenedModel} is longer than {MaxModelIdLength} characters: choose a shorter suffix.", "suffix");
        if (await db.BaseModels.AnyAsync(m => m.Id == hardening.HardenedModel, cancellationToken))
            throw ModelExists(hardening.HardenedModel);

        var run = new HardeningRun
        {
            Id = Ids.HardeningRun(),
            BaseModel = baseModel,
            Method = hardening.Method.Name,
            Params = hardening.Method.ToJson(hardening.Params),
            Suffix = hardening.Suffix,
            HardenedModel = hardening.HardenedModel,
        };
        db.HardeningRuns.Add(run);
        Outbox.Add(db, Dispatch.Hardening, run.Id); // committed with the run: it is never lost
        try
        {
            await db.SaveChangesAsync(cancellationToken);
        }
        catch (DbUpdateException e) when (e.InnerException is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation })
        {
            throw ApiException.InvalidRequest($"Another hardening run is producing {run.HardenedModel}; wait for it or choose another suffix.",
                "suffix", "hardening_in_progress");
        }
        await outbox.SendCommittedAsync(db);
        return TypedResults.Ok(HardeningRunObject.From(run));
    }

    /// <summary>List hardening runs, newest first.</summary>
    /// <param name="after">Cursor: the last run id of the previous page.</param>
    /// <param name="limit">1 to 100, default 20.</param>
    internal static async Task<Ok<ListResponse<HardeningRunObject>>> ListHardeningRuns(
        FineTuneDbContext db, string? after, int? limit, CancellationToken cancellationToken)
    {
        var take = Paging.Limit(limit);
        var cursor = after is null ? null : await FindAsync(db, after, "after", cancellationToken);
        var rows = await db.HardeningRuns.AsNoTracking().InCreationOrder(cursor).Take(take + 1).ToListAsync(cancellationToken);
        return TypedResults.Ok(ListResponse.Page(rows.Select(HardeningRunObject.From).ToList(), take, r => r.Id));
    }

    /// <summary>Retrieve a hardening run: status, parameters, and once succeeded the report with the new model's base scores.</summary>
    internal static async Task<Ok<HardeningRunObject>> RetrieveHardeningRun(string runId, FineTuneDbContext db, CancellationToken cancellationToken) =>
        TypedResults.Ok(HardeningRunObject.From(await FindAsync(db, runId, "run_id", cancellationToken)));

    /// <summary>A hardening run's progress events, newest first: start, every tenth of the steps with its losses, registration, scores.</summary>
    /// <param name="after">Cursor: the last event id of the previous page.</param>
    /// <param name="limit">1 to 100, default 20.</param>
    internal static async Task<Ok<ListResponse<HardeningRunEventObject>>> ListHardeningRunEvents(
        string runId, FineTuneDbContext db, string? after, int? limit, CancellationToken cancellationToken)
    {
        await FindAsync(db, runId, "run_id", cancellationToken);
        var take = Paging.Limit(limit);
        var events = db.HardeningRunEvents.AsNoTracking().Where(e => e.RunId == runId);
        if (after is not null)
        {
            var cursor = await events.Where(e => e.Id == after).Select(e => (long?)e.Sequence).SingleOrDefaultAsync(cancellationToken)
                ?? throw ApiException.NotFound("hardening run event", after, "after");
            events = events.Where(e => e.Sequence < cursor);
        }
        var rows = await events.OrderByDescending(e => e.Sequence).Take(take + 1).ToListAsync(cancellationToken);
        return TypedResults.Ok(ListResponse.Page(rows.Select(HardeningRunEventObject.From).ToList(), take, e => e.Id));
    }

    /// <summary>The longest base model id (its column).</summary>
    private const int MaxModelIdLength = 128;

    private static ApiException ModelExists(string model) =>
        ApiException.InvalidRequest($"A base model named {model} exists already; choose another suffix.", "suffix", "model_exists");

    private static async Task<HardeningRun> FindAsync(FineTuneDbContext db, string runId, string param, CancellationToken cancellationToken) =>
        await db.HardeningRuns.AsNoTracking().SingleOrDefaultAsync(r => r.Id == runId, cancellationToken)
        ?? throw ApiException.NotFound("hardening run", runId, param);
}
