using System.Security.Claims;
using System.Text.Json.Nodes;
using FineTuneService.Api.Auth;
using FineTuneService.Api.Contracts;
using FineTuneService.Api.Errors;
using FineTuneService.Api.Jobs;
using FineTuneService.Contracts.Safety;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Jobs;
using FineTuneService.Core.Models;
using FineTuneService.Core.Safety;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace FineTuneService.Api.Endpoints;

/// <summary>OpenAI fine-tuning API: <c>/v1/fine_tuning/jobs</c>.</summary>
public static class FineTuningJobsEndpoints
{
    public static IEndpointRouteBuilder MapFineTuningJobs(this IEndpointRouteBuilder routes)
    {
        var jobs = routes.MapGroup("/v1/fine_tuning/jobs").RequireAuthorization(FtsClaims.TenantPolicy).WithTags("Fine-tuning");
        jobs.MapPost("/", CreateFineTuningJob);
        jobs.MapPost("/estimate", EstimateFineTuningJob);
        jobs.MapGet("/", ListFineTuningJobs);
        jobs.MapGet("/{jobId}", RetrieveFineTuningJob).CachedUntilJobChanges(answersJobObject: true);
        jobs.MapPost("/{jobId}/cancel", CancelFineTuningJob);
        jobs.MapPost("/{jobId}/pause", PauseFineTuningJob);
        jobs.MapPost("/{jobId}/resume", ResumeFineTuningJob);
        jobs.MapGet("/{jobId}/events", ListFineTuningEvents).CachedUntilJobChanges();
        jobs.MapGet("/{jobId}/checkpoints", ListFineTuningCheckpoints).CachedUntilJobChanges();
        return routes;
    }

    /// <summary>Create a fine-tuning job.</summary>
    /// <remarks>
    /// The job waits in validating_files until its files are validated, then is queued for a GPU worker; an invalid
    /// file fails it with that file's error. Send an Idempotency-Key header to make retries return the same job.
    /// The extra <c>safety</c> object picks the safety strategy: {"strategy": ["antidote"], "params": {...}}.
    /// </remarks>
    /// <param name="request">OpenAI's create-job body plus <c>safety</c>.</param>
    /// <param name="idempotencyKey">Retries with the same key return the job the first request created.</param>
    internal static async Task<Ok<FineTuningJobObject>> CreateFineTuningJob(
        CreateFineTuningJobRequest request, [FromHeader(Name = "Idempotency-Key")] string? idempotencyKey,
        ClaimsPrincipal user, FineTuneDbContext db, JobPromotion promotion, TimeProvider clock, CancellationToken cancellationToken)
    {
        var tenantId = user.TenantId();
        if (idempotencyKey is { Length: > 256 }) throw ApiException.InvalidRequest("Idempotency-Key is at most 256 characters.");
        var settings = JobRequestValidator.Validate(request);
        if (idempotencyKey is not null && await FindByIdempotencyKeyAsync(db, tenantId, idempotencyKey, cancellationToken) is { } earlier)
            return TypedResults.Ok(FineTuningJobObject.From(SameRequest(earlier, request, settings, idempotencyKey)));

        var lineage = await ValidateReferencesAsync(db, user, request, settings, cancellationToken);

        var job = new FineTuningJob
        {
            Id = Ids.Job(),
            TenantId = tenantId,
            Model = request.Model!,
            RootModel = lineage.RootModel,
            ParentJobId = lineage.ParentJobId,
            LineageDepth = lineage.Depth,
            TrainingFileId = request.TrainingFile!,
            ValidationFileId = request.ValidationFile,
            Hyperparameters = settings.Method.Hyperparameters,
            Method = settings.Method,
            Safety = settings.Safety,
            Suffix = settings.Suffix,
            Seed = settings.Seed,
            Metadata = settings.Metadata,
            IdempotencyKey = idempotencyKey,
        };
        var earlierJob = await db.Database.CreateExecutionStrategy().ExecuteAsync(async ct =>
        {
            db.ChangeTracker.Clear();
            await using var transaction = await db.Database.BeginTransactionAsync(ct);
            if (idempotencyKey is not null)
            {
                // Concurrent creates with one key wait here in turn, so a retry racing the first request finds its job
                // instead of running into the unique index (and an error-level EF log) on insert.
                await db.Database.ExecuteSqlAsync($"SELECT pg_advisory_xact_lock(hashtextextended({tenantId + "\n" + idempotencyKey}, 0))", ct);
                if (await FindByIdempotencyKeyAsync(db, tenantId, idempotencyKey, ct) is { } first) return first;
            }
            db.Jobs.Add(job);
            db.JobEvents.Add(JobEvents.Message(job.Id, $"Created fine-tuning job: {job.Id}"));
            db.JobEvents.Add(JobEvents.Message(job.Id, $"Validating training file: {job.TrainingFileId}"
                + (job.ValidationFileId is null ? "" : $" and validation file: {job.ValidationFileId}")));
            if (lineage.Depth > 0)
                db.JobEvents.Add(JobEvents.Message(job.Id,
                    $"Continuing training from {job.Model} (job {job.ParentJobId}); root base model: {job.RootModel}"));
            if (LocatedSafetyLayers.AreNeededBy(job.Safety)
                && await db.BaseModels.AnyAsync(m => m.Id == job.RootModel && m.SafetyLayersStatus == SafetyLayersStatus.Pending, ct))
                db.JobEvents.Add(JobEvents.Message(job.Id,
                    $"Waiting for a worker to locate the safety layers of {job.RootModel}: {LocatedSafetyLayers.StrategyName} without a layer range freezes those"));
            await db.SaveChangesAsync(ct);
            await transaction.CommitAsync(ct);
            return null;
        }, cancellationToken);
        if (earlierJob is not null) return TypedResults.Ok(FineTuningJobObject.From(SameRequest(earlierJob, request, settings, idempotencyKey!)));

        await promotion.PromoteAsync(job.Id, cancellationToken);
        return TypedResults.Ok(await ObjectAsync(db, await FindAsync(db, user, job.Id, cancellationToken), clock, cancellationToken));
    }

    /// <summary>Estimate a fine-tuning job without creating it.</summary>
    /// <remarks>
    /// Extension. Takes the create body and validates it exactly as create does (the same 400s and 404s); returns the
    /// tokens the job would train on (equal to its <c>trained_tokens</c> once it succeeds), its optimizer steps, the
    /// resolved hyperparameters, the estimated run time (training plus safety evaluation stages) with its basis, and
    /// the place it would take in the queue now.
    /// </remarks>
    /// <param name="request">OpenAI's create-job body plus <c>safety</c>.</param>
    internal static async Task<Ok<FineTuningJobEstimateObject>> EstimateFineTuningJob(
        CreateFineTuningJobRequest request, ClaimsPrincipal user, FineTuneDbContext db, JobEstimator estimator, TimeProvider clock,
        CancellationToken cancellationToken)
    {
        var settings = JobRequestValidator.Validate(request);
        var lineage = await ValidateReferencesAsync(db, user, request, settings, cancellationToken);
        var file = await FilesEndpoints.TenantFiles(db, user).AsNoTracking().SingleAsync(f => f.Id == request.TrainingFile, cancellationToken);
        if (file.Status == FileStatus.Error)
            throw ApiException.InvalidRequest($"Invalid training_file: {file.Id} is invalid: {file.StatusDetails}", "training_file", "invalid_training_file");
        var stages = SafetyStagePlan.For(settings.Safety, continuesTraining: lineage.Depth > 0).Stages.Count;
        JobEstimate estimate;
        try
        {
            estimate = await estimator.EstimateAsync(db, lineage.RootModel, file, settings.Method, settings.Seed, stages, cancellationToken);
        }
        catch (InvalidDataException e)
        {
            throw ApiException.InvalidRequest($"Invalid training_file: {e.Message}", "training_file", "invalid_training_file");
        }
        var standing = await JobQueue.NextAsync(db, clock.GetUtcNow().UtcDateTime, cancellationToken);
        return TypedResults.Ok(new FineTuningJobEstimateObject(
            request.Model!, lineage.RootModel, estimate.Tokens.TrainedTokens, estimate.Tokens.Examples, estimate.Tokens.TotalSteps,
            estimate.Tokens.StepsPerEpoch, estimate.Hyperparameters.AsRequested().ToJson(), Math.Round(estimate.Duration.TotalSeconds, 1),
            estimate.Basis, estimate.Basis == EstimateBasis.Measured ? lineage.RootModel : null, estimate.MeasuredDeviceKind, estimate.MeasuredJobs,
            [.. estimate.PoolDeviceKinds.Order(StringComparer.Ordinal)], stages,
            standing.Position, UnixTime.Seconds(standing.EstimatedStart), UnixTime.Seconds(standing.EstimatedStart + estimate.Duration)));
    }

    /// <summary>List the caller's fine-tuning jobs, newest first.</summary>
    /// <remarks>
    /// Filter by metadata as OpenAI does: <c>?metadata[team]=search&amp;metadata[run]=3</c> keeps the jobs whose metadata
    /// has all those pairs; <c>?metadata=null</c> keeps the jobs without metadata.
    /// </remarks>
    /// <param name="after">Cursor: the last job id of the previous page.</param>
    /// <param name="limit">1 to 100, default 20.</param>
    internal static async Task<Ok<ListResponse<FineTuningJobObject>>> ListFineTuningJobs(
        ClaimsPrincipal user, FineTuneDbContext db, HttpRequest http, TimeProvider clock, string? after, int? limit, CancellationToken cancellationToken)
    {
        var take = Paging.Limit(limit);
        var query = MetadataFilter.Apply(TenantJobs(db, user), http.Query);
        var cursor = after is null ? null : await FindAsync(db, user, after, cancellationToken, param: "after");
        var rows = await query.InCreationOrder(cursor).Take(take + 1).ToListAsync(cancellationToken);
        var standings = await JobQueue.StandingsAsync(db, rows, clock.GetUtcNow().UtcDateTime, cancellationToken);
        return TypedResults.Ok(ListResponse.Page(rows.Select(j => FineTuningJobObject.From(j, standings.GetValueOrDefault(j.Id))).ToList(), take, j => j.Id));
    }

    /// <summary>Retrieve a fine-tuning job.</summary>
    /// <remarks>A queued job carries <c>queue_position</c> (1: the next a free worker picks) and <c>estimated_start</c>, and its <c>estimated_finish</c> counts the queue.</remarks>
    internal static async Task<Ok<FineTuningJobObject>> RetrieveFineTuningJob(
        string jobId, ClaimsPrincipal user, FineTuneDbContext db, TimeProvider clock, CancellationToken cancellationToken) =>
        TypedResults.Ok(await ObjectAsync(db, await FindAsync(db, user, jobId, cancellationToken), clock, cancellationToken));

    /// <summary>The job object, with its queue standing when it is queued.</summary>
    private static async Task<FineTuningJobObject> ObjectAsync(FineTuneDbContext db, FineTuningJob job, TimeProvider clock, CancellationToken cancellationToken) =>
        FineTuningJobObject.From(job, await JobQueue.StandingAsync(db, job, clock.GetUtcNow().UtcDateTime, cancellationToken));

    /// <summary>Cancel a job. A running job stops at its next training step.</summary>
    internal static async Task<Ok<FineTuningJobObject>> CancelFineTuningJob(
        string jobId, ClaimsPrincipal user, FineTuneDbContext db, JobTransitions transitions, CancellationToken cancellationToken)
    {
        await transitions.CancelAsync(await FindAsync(db, user, jobId, cancellationToken), cancellationToken);
        return TypedResults.Ok(FineTuningJobObject.From(await FindAsync(db, user, jobId, cancellationToken)));
    }

    /// <summary>Pause a queued or running job; a running job checkpoints first. Its status is paused until resumed.</summary>
    internal static async Task<Ok<FineTuningJobObject>> PauseFineTuningJob(
        string jobId, ClaimsPrincipal user, FineTuneDbContext db, JobTransitions transitions, CancellationToken cancellationToken)
    {
        await transitions.PauseAsync(await FindAsync(db, user, jobId, cancellationToken), cancellationToken);
        return TypedResults.Ok(FineTuningJobObject.From(await FindAsync(db, user, jobId, cancellationToken)));
    }

    /// <summary>Resume a paused job from its last checkpoint.</summary>
    internal static async Task<Ok<FineTuningJobObject>> ResumeFineTuningJob(
        string jobId, ClaimsPrincipal user, FineTuneDbContext db, JobTransitions transitions, CancellationToken cancellationToken)
    {
        await transitions.ResumeAsync(await FindAsync(db, user, jobId, cancellationToken), cancellationToken);
        return TypedResults.Ok(FineTuningJobObject.From(await FindAsync(db, user, jobId, cancellationToken)));
    }

    /// <summary>List a job's events, newest first (metrics events carry step, loss, tokens/s and ETA in data).</summary>
    /// <param name="after">Cursor: the last event id of the previous page; the next page holds older events.</param>
    /// <param name="limit">1 to 100, default 20.</param>
    internal static async Task<Ok<ListResponse<FineTuningJobEventObject>>> ListFineTuningEvents(
        string jobId, ClaimsPrincipal user, FineTuneDbContext db, string? after, int? limit, CancellationToken cancellationToken)
    {
        var take = Paging.Limit(limit);
        var tenantId = user.TenantId();
        var before = long.MaxValue;
        if (after is not null)
        {
            await RequireJobAsync(db, tenantId, jobId, cancellationToken);
            before = await EventSequence(db, jobId, after, cancellationToken) ?? throw ApiException.NotFound("event", after, "after");
        }
        var rows = await EventsPage(db, tenantId, jobId, before, take + 1).ToListAsync(cancellationToken);
        if (rows.Count == 0 && after is null) await RequireJobAsync(db, tenantId, jobId, cancellationToken);
        return TypedResults.Ok(ListResponse.Page(rows.Select(FineTuningJobEventObject.From).ToList(), take, e => e.Id));
    }

    /// <summary>
    /// List a job's checkpoints, latest step first: one at the end of every epoch (the last three are kept once the
    /// job is done), each usable as the model <c>fine_tuned_model_checkpoint</c>. Resume states saved every N steps
    /// are the worker's, not listed.
    /// </summary>
    /// <param name="after">Cursor: the last checkpoint id of the previous page.</param>
    /// <param name="limit">1 to 100, default 10.</param>
    internal static async Task<Ok<ListResponse<FineTuningJobCheckpointObject>>> ListFineTuningCheckpoints(
        string jobId, ClaimsPrincipal user, FineTuneDbContext db, string? after, int? limit, CancellationToken cancellationToken)
    {
        var take = Paging.Limit(limit, defaultLimit: 10);
        var tenantId = user.TenantId();
        var before = int.MaxValue;
        if (after is not null)
        {
            await RequireJobAsync(db, tenantId, jobId, cancellationToken);
            before = await CheckpointStep(db, jobId, after, cancellationToken) ?? throw ApiException.NotFound("checkpoint", after, "after");
        }
        var rows = await CheckpointsPage(db, tenantId, jobId, before, take + 1).ToListAsync(cancellationToken);
        if (rows.Count == 0 && after is null) await RequireJobAsync(db, tenantId, jobId, cancellationToken);
        return TypedResults.Ok(ListResponse.Page(rows.Select(FineTuningJobCheckpointObject.From).ToList(), take, c => c.Id));
    }

    private static IQueryable<FineTuningJob> TenantJobs(FineTuneDbContext db, ClaimsPrincipal user)
    {
        var tenantId = user.TenantId();
        return db.Jobs.AsNoTracking().Where(j => j.TenantId == tenantId);
    }

    private static async Task<FineTuningJob> FindAsync(FineTuneDbContext db, ClaimsPrincipal user, string jobId,
        CancellationToken cancellationToken, string param = "fine_tuning_job_id") =>
        await TenantJob(db, user.TenantId(), jobId, cancellationToken) ?? throw JobNotFound(jobId, param);

    private static async Task RequireJobAsync(FineTuneDbContext db, string tenantId, string jobId, CancellationToken cancellationToken)
    {
        if (!await TenantHasJob(db, tenantId, jobId, cancellationToken)) throw JobNotFound(jobId, "fine_tuning_job_id");
    }

    private static ApiException JobNotFound(string jobId, string param) => ApiException.NotFound("fine-tuning job", jobId, param);

    // Compiled queries for what tenants poll (a job, its newest events and checkpoints): no expression tree to build,
    // hash and look up per request. A page query also checks the tenant, so a non-empty first page is one round trip.
    private static readonly Func<FineTuneDbContext, string, string, CancellationToken, Task<FineTuningJob?>> TenantJob =
        EF.CompileAsyncQuery((FineTuneDbContext db, string tenantId, string jobId, CancellationToken _) =>
            db.Jobs.AsNoTracking().SingleOrDefault(j => j.TenantId == tenantId && j.Id == jobId));

    private static readonly Func<FineTuneDbContext, string, string, CancellationToken, Task<bool>> TenantHasJob =
        EF.CompileAsyncQuery((FineTuneDbContext db, string tenantId, string jobId, CancellationToken _) =>
            db.Jobs.Any(j => j.TenantId == tenantId && j.Id == jobId));

    private static readonly Func<FineTuneDbContext, string, string, long, int, IAsyncEnumerable<JobEvent>> EventsPage =
        EF.CompileAsyncQuery((FineTuneDbContext db, string tenantId, string jobId, long before, int take) => db.JobEvents.AsNoTracking()
            .Where(e => e.JobId == jobId && e.Sequence < before && db.Jobs.Any(j => j.Id == jobId && j.TenantId == tenantId))
            .OrderByDescending(e => e.Sequence)
            .Take(take));

    private static readonly Func<FineTuneDbContext, string, string, CancellationToken, Task<long?>> EventSequence =
        EF.CompileAsyncQuery((FineTuneDbContext db, string jobId, string eventId, CancellationToken _) =>
            db.JobEvents.Where(e => e.JobId == jobId && e.Id == eventId).Select(e => (long?)e.Sequence).SingleOrDefault());

    private static readonly Func<FineTuneDbContext, string, string, int, int, IAsyncEnumerable<JobCheckpoint>> CheckpointsPage =
        EF.CompileAsyncQuery((FineTuneDbContext db, string tenantId, string jobId, int before, int take) => db.JobCheckpoints.AsNoTracking()
            .Where(c => c.JobId == jobId && c.WeightsArtifactSha256 != null && c.StepNumber < before && db.Jobs.Any(j => j.Id == jobId && j.TenantId == tenantId))
            .OrderByDescending(c => c.StepNumber)
            .Take(take));

    private static readonly Func<FineTuneDbContext, string, string, CancellationToken, Task<int?>> CheckpointStep =
        EF.CompileAsyncQuery((FineTuneDbContext db, string jobId, string checkpointId, CancellationToken _) =>
            db.JobCheckpoints.Where(c => c.JobId == jobId && c.Id == checkpointId && c.WeightsArtifactSha256 != null).Select(c => (int?)c.StepNumber).SingleOrDefault());

    private static Task<FineTuningJob?> FindByIdempotencyKeyAsync(FineTuneDbContext db, string tenantId, string key, CancellationToken cancellationToken) =>
        db.Jobs.AsNoTracking().SingleOrDefaultAsync(j => j.TenantId == tenantId && j.IdempotencyKey == key, cancellationToken);

    /// <summary>
    /// The job an earlier request with this Idempotency-Key created, when this request asks for the same job; a key
    /// reused for a different request is refused (422, as the IETF Idempotency-Key draft says) rather than answered
    /// with a job the caller did not ask for. A seed the caller left out was drawn at random, so it is not compared.
    /// </summary>
    private static FineTuningJob SameRequest(FineTuningJob earlier, CreateFineTuningJobRequest request, JobSettings settings, string idempotencyKey)
    {
        var same = earlier.Model == request.Model && earlier.TrainingFileId == request.TrainingFile && earlier.ValidationFileId == request.ValidationFile
                   && earlier.Suffix == settings.Suffix && (request.Seed is null || earlier.Seed == settings.Seed)
                   && earlier.Method == settings.Method && earlier.Safety.Equals(settings.Safety)
                   && JsonNode.DeepEquals(earlier.Metadata, settings.Metadata);
        return same ? earlier : throw new ApiException(StatusCodes.Status422UnprocessableEntity,
            $"The Idempotency-Key '{idempotencyKey}' was already used for a different request (job {earlier.Id}); use a new key for a new job.",
            "invalid_request_error", null, "idempotency_key_reused");
    }

    /// <summary>
    /// What create checks against the database once the body is valid: the model (with the safety plan's rules for
    /// its root base model) and the files. Returns the model's lineage.
    /// </summary>
    private static async Task<ModelLineage> ValidateReferencesAsync(FineTuneDbContext db, ClaimsPrincipal user,
        CreateFineTuningJobRequest request, JobSettings settings, CancellationToken cancellationToken)
    {
        var lineage = await RequireModelAsync(db, user.TenantId(), request.Model!, cancellationToken);
        var facts = await BaseModelFacts.OfAsync(db, lineage.RootModel, cancellationToken);
        settings.Safety.Validate(facts with { LoraAdapter = settings.Method.Adapter is not null });
        await RequireFileAsync(db, user, request.TrainingFile!, "training_file", cancellationToken);
        if (request.ValidationFile is not null) await RequireFileAsync(db, user, request.ValidationFile, "validation_file", cancellationToken);
        return lineage;
    }

    /// <summary>
    /// A base model, or one of the caller's own fine-tuned models or epoch checkpoints (continued training), with its
    /// lineage. Any other id, another tenant's model included, is a 404 as on every model route.
    /// </summary>
    private static async Task<ModelLineage> RequireModelAsync(FineTuneDbContext db, string tenantId, string model, CancellationToken cancellationToken) =>
        await ModelAccess.LineageAsync(db, tenantId, model, cancellationToken) ?? throw ApiException.ModelNotFound(model);

    private static async Task RequireFileAsync(FineTuneDbContext db, ClaimsPrincipal user, string fileId, string param, CancellationToken cancellationToken)
    {
        var file = await FilesEndpoints.TenantFiles(db, user).AsNoTracking().SingleOrDefaultAsync(f => f.Id == fileId, cancellationToken)
            ?? throw ApiException.InvalidRequest($"Invalid {param}: no such file: {fileId}.", param, "invalid_file");
        if (file.Purpose != FilesEndpoints.FineTunePurpose)
            throw ApiException.InvalidRequest($"Invalid {param}: {fileId} has purpose '{file.Purpose}', not '{FilesEndpoints.FineTunePurpose}'.", param, "invalid_file");
    }
}
