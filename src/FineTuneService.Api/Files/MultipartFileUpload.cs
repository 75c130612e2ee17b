using FineTuneService.Api.Errors;
using FineTuneService.Core.Artifacts;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Net.Http.Headers;

namespace FineTuneService.Api.Files;

/// <summary>What a multipart upload carried: the stored content plus its form fields.</summary>
internal sealed record UploadedFile(ArtifactInfo Content, string Filename, string? Purpose);

/// <summary>
/// Reads <c>multipart/form-data</c> section by section and streams the <c>file</c> part straight into the artifact
/// store, so an upload is never held whole in memory or on disk.
/// </summary>
internal static class MultipartFileUpload
{
    private const int MaxFieldLength = 1024;

    public static async Task<UploadedFile> ReadAsync(HttpRequest request, IArtifactStore store, long maxBytes, CancellationToken cancellationToken)
    {
        if (!MediaTypeHeaderValue.TryParse(request.ContentType, out var mediaType)
            || !mediaType.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase)
            || HeaderUtilities.RemoveQuotes(mediaType.Boundary).Value is not { Length: > 0 } boundary)
            throw ApiException.InvalidRequest("Upload files as multipart/form-data with fields 'file' and 'purpose'.");

        // Room for the file plus the form's own framing; the file itself is limited exactly below.
        if (request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodySize)
            bodySize.MaxRequestBodySize = maxBytes + 64 * 1024;

        var reader = new MultipartReader(boundary, request.Body) { BodyLengthLimit = null };
        ArtifactInfo? content = null;
        string? filename = null, purpose = null;
        while (await reader.ReadNextSectionAsync(cancellationToken) is { } section)
        {
            if (!ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var disposition)) continue;
            var name = HeaderUtilities.RemoveQuotes(disposition.Name).Value;
            if (name == "file" && disposition.IsFileDisposition())
            {
                if (content is not null) throw ApiException.InvalidRequest("Upload one file per request.", "file");
                filename = HeaderUtilities.RemoveQuotes(disposition.FileNameStar.HasValue ? disposition.FileNameStar : disposition.FileName).Value;
                await using var limited = new LengthLimitedStream(section.Body, maxBytes);
                content = await store.PutAsync(limited, section.ContentType ?? "application/octet-stream", cancellationToken);
            }
            else if (name == "purpose")
            {
                using var text = new StreamReader(new LengthLimitedStream(section.Body, MaxFieldLength));
                purpose = (await text.ReadToEndAsync(cancellationToken)).Trim();
            }
            else
            {
                await section.Body.DrainAsync(cancellationToken);
            }
        }

        if (content is null) throw ApiException.InvalidRequest("Missing required parameter: 'file'.", "file");
        return new UploadedFile(content, string.IsNullOrWhiteSpace(filename) ? "upload.jsonl" : Path.GetFileName(filename), purpose);
    }
}
