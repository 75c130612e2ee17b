using System.Text.Json.Nodes;
using FineTuneService.Core.Domain;

namespace FineTuneService.Api.Contracts;

/// <summary>OpenAI "file" object, plus the validation report (extra field <c>validation</c>).</summary>
public sealed record FileObject(
    string Id, long Bytes, long CreatedAt, long? ExpiresAt, string Filename, string Purpose, string Status,
    string? StatusDetails, JsonObject? Validation)
{
    public string Object => "file";

    internal static FileObject From(StoredFile file) => new(
        file.Id, file.Bytes, UnixTime.Seconds(file.CreatedAt), null, file.Filename, file.Purpose,
        file.Status switch { FileStatus.Processed => "processed", FileStatus.Error => "error", _ => "uploaded" },
        file.StatusDetails, file.ValidationReport);
}

/// <summary>Answer to <c>DELETE /v1/files/{id}</c>.</summary>
public sealed record FileDeleted(string Id, bool Deleted)
{
    public string Object => "file";
}

/// <summary>Multipart form of <c>POST /v1/files</c> (documentation only: the body is streamed, not bound).</summary>
public sealed record FileUploadForm(IFormFile File, string Purpose);
