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

    /// <summary>RFC 2046: a boundary is 1 to 70 characters.</summary>
    private const int MaxBoundaryLength = 70;

    public static async Task<UploadedFile> ReadAsync(HttpRequest request, IArtifactStore store, long maxBytes, CancellationToken cancellationToken)
    {
        if (!MediaTypeHeaderValue.TryParse(request.ContentType, out var mediaType)
            || !mediaType.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase)
            || HeaderUtilities.RemoveQuotes(mediaType.Boundary).Value is not { Length: > 0 } boundary)
            throw ApiException.InvalidRequest("Upload files as multipart/form-data with fields 'file' and 'purpose'.");
        if (boundary.Length > MaxBoundaryLength)
            throw Malformed($"the boundary is longer than {MaxBoundaryLength} characters");

        // Room for the file plus the form's own framing; the file itself is limited exactly below.
        if (request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodySize)
            bodySize.MaxRequestBodySize = maxBytes + 64 * 1024;

        try
        {
            return await ReadSectionsAsync(new MultipartReader(boundary, request.Body) { BodyLengthLimit = null }, store, maxBytes, cancellationToken);
        }
        // The reader's own errors: a body that ends before the closing boundary, a header line or header block over
        // its limits. Kestrel's (BadHttpRequestException, an IOException too) keep their status; so does a client
        // that went away.
        catch (Exception e) when (e is IOException or InvalidDataException && e is not BadHttpRequestException
                                  && !request.HttpContext.RequestAborted.IsCancellationRequested)
        {
            throw Malformed(e.Message);
        }
    }

    private static async Task<UploadedFile> ReadSectionsAsync(MultipartReader reader, IArtifactStore store, long maxBytes, CancellationToken cancellationToken)
    {
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
        return new UploadedFile(content, StoredFilename(filename), purpose);
    }

    /// <summary>The name part only, without control characters (PostgreSQL text holds no U+0000), at most 255 characters.</summary>
    private static string StoredFilename(string? filename)
    {
        var name = new string(Path.GetFileName(filename ?? "").Where(c => !char.IsControl(c)).ToArray()).Trim();
        if (name.Length > 255) name = name[^255..].TrimStart(LowSurrogates);
        return name.Length == 0 ? "upload.jsonl" : name;
    }

    private static readonly char[] LowSurrogates = Enumerable.Range(0xDC00, 0x400).Select(c => (char)c).ToArray();

    private static ApiException Malformed(string detail) =>
        ApiException.InvalidRequest($"The multipart/form-data body is malformed: {detail}.", null, "invalid_multipart");
}
