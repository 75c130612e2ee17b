using System.Security.Claims;
using FineTuneService.Api.Auth;
using FineTuneService.Api.Contracts;
using FineTuneService.Api.Errors;
using FineTuneService.Api.Files;
using FineTuneService.Core.Artifacts;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Jobs;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace FineTuneService.Api.Endpoints;

/// <summary>OpenAI Files API: <c>/v1/files</c>.</summary>
public static class FilesEndpoints
{
    public const string FineTunePurpose = FilePurposes.FineTune;

    /// <summary>Prompt sets for <c>POST /v1/safety/evaluations</c> (OpenAI's purpose for evaluation data).</summary>
    public const string EvalsPurpose = FilePurposes.Evals;

    public static IEndpointRouteBuilder MapFiles(this IEndpointRouteBuilder routes)
    {
        var files = routes.MapGroup("/v1/files").RequireAuthorization(FtsClaims.TenantPolicy).WithTags("Files");
        files.MapPost("/", UploadFile).Accepts<FileUploadForm>("multipart/form-data").DisableAntiforgery();
        files.MapGet("/", ListFiles);
        files.MapGet("/{fileId}", RetrieveFile);
        files.MapDelete("/{fileId}", DeleteFile);
        files.MapGet("/{fileId}/content", RetrieveFileContent);
        return routes;
    }

    /// <summary>Upload a JSONL file (multipart: file, purpose): training data (fine-tune) or a prompt set (evals).</summary>
    /// <remarks>
    /// The file is streamed into storage and validated in the background: poll until status is processed or error.
    /// Training files are also screened for harmful rows (unsafe_file). A prompt set has one prompt per line:
    /// {"prompt": "...", "category": "..."} (category optional) or a chat row whose last user turn is the prompt.
    /// </remarks>
    internal static async Task<Ok<FileObject>> UploadFile(HttpRequest request, ClaimsPrincipal user, FineTuneDbContext db,
        IArtifactStore artifacts, Outbox outbox, IOptions<FilesOptions> options, CancellationToken cancellationToken)
    {
        var upload = await MultipartFileUpload.ReadAsync(request, artifacts, options.Value.MaxUploadBytes, cancellationToken);
        if (upload.Purpose is null) throw ApiException.InvalidRequest("Missing required parameter: 'purpose'.", "purpose");
        if (upload.Purpose is not (FineTunePurpose or EvalsPurpose))
            throw ApiException.InvalidRequest($"Unsupported purpose '{upload.Purpose}'; this service accepts '{FineTunePurpose}' and '{EvalsPurpose}'.", "purpose");

        var file = new StoredFile
        {
            Id = Ids.File(),
            TenantId = user.TenantId(),
            Filename = upload.Filename,
            Purpose = upload.Purpose,
            Bytes = upload.Content.Length,
            Sha256 = upload.Content.Sha256,
        };
        db.Files.Add(file);
        Outbox.Add(db, Dispatch.FileValidation, file.Id); // committed with the file: validation is never lost
        await db.SaveChangesAsync(cancellationToken);
        await outbox.SendCommittedAsync(db);
        return TypedResults.Ok(FileObject.From(file));
    }

    /// <summary>List the caller's files, newest first.</summary>
    /// <param name="purpose">Only files with this purpose.</param>
    /// <param name="after">Cursor: a file id from a previous page.</param>
    /// <param name="limit">1 to 10000, default 10000.</param>
    /// <param name="order">"desc" (default) or "asc" by creation time.</param>
    internal static async Task<Ok<ListResponse<FileObject>>> ListFiles(ClaimsPrincipal user, FineTuneDbContext db,
        string? purpose, string? after, int? limit, string? order, CancellationToken cancellationToken)
    {
        var take = Paging.Limit(limit, defaultLimit: 10_000, max: 10_000);
        var ascending = order switch
        {
            null or "desc" => false,
            "asc" => true,
            _ => throw ApiException.InvalidRequest("order must be 'asc' or 'desc'.", "order"),
        };
        var query = TenantFiles(db, user);
        if (purpose is not null) query = query.Where(f => f.Purpose == purpose);
        var cursor = after is null ? null
            : await TenantFiles(db, user).SingleOrDefaultAsync(f => f.Id == after, cancellationToken) ?? throw ApiException.NotFound("file", after, "after");
        var rows = await query.InCreationOrder(cursor, ascending).Take(take + 1).ToListAsync(cancellationToken);
        return TypedResults.Ok(ListResponse.Page(rows.Select(FileObject.From).ToList(), take, f => f.Id));
    }

    /// <summary>Retrieve a file, including its validation status and report.</summary>
    internal static async Task<Ok<FileObject>> RetrieveFile(string fileId, ClaimsPrincipal user, FineTuneDbContext db, CancellationToken cancellationToken) =>
        TypedResults.Ok(FileObject.From(await FindAsync(db, user, fileId, cancellationToken)));

    /// <summary>Delete a file. Jobs already using it keep their copy of the content.</summary>
    internal static async Task<Ok<FileDeleted>> DeleteFile(string fileId, ClaimsPrincipal user, FineTuneDbContext db, TimeProvider clock,
        CancellationToken cancellationToken)
    {
        var file = await FindAsync(db, user, fileId, cancellationToken);
        file.DeletedAt = clock.GetUtcNow().UtcDateTime;
        await db.SaveChangesAsync(cancellationToken);
        return TypedResults.Ok(new FileDeleted(file.Id, true));
    }

    /// <summary>Download a file's content, streamed.</summary>
    internal static async Task<FileStreamHttpResult> RetrieveFileContent(string fileId, ClaimsPrincipal user, FineTuneDbContext db,
        IArtifactStore artifacts, CancellationToken cancellationToken)
    {
        var file = await FindAsync(db, user, fileId, cancellationToken);
        var content = await artifacts.OpenReadAsync(file.Sha256, cancellationToken)
            ?? throw new InvalidOperationException($"Content {file.Sha256} of file {file.Id} is missing from the artifact store.");
        return TypedResults.Stream(content, "application/octet-stream", file.Filename);
    }

    /// <summary>The caller's live files: another tenant's or a deleted file is simply not there (404, never 403).</summary>
    internal static IQueryable<StoredFile> TenantFiles(FineTuneDbContext db, ClaimsPrincipal user)
    {
        var tenantId = user.TenantId();
        return db.Files.Where(f => f.TenantId == tenantId && f.DeletedAt == null);
    }

    private static async Task<StoredFile> FindAsync(FineTuneDbContext db, ClaimsPrincipal user, string fileId, CancellationToken cancellationToken) =>
        await TenantFiles(db, user).SingleOrDefaultAsync(f => f.Id == fileId, cancellationToken)
        ?? throw ApiException.NotFound("file", fileId, "file_id");
}
