using System.Text;
using System.Text.Json;
using FineTuneService.Contracts;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.Options;
using Npgsql;

namespace FineTuneService.Api.Errors;

/// <summary>
/// The one place errors become responses: OpenAI envelopes under /v1, ProblemDetails elsewhere. Unexpected
/// exceptions are logged and answered 500 without internals.
/// </summary>
internal sealed class OpenAiExceptionHandler(IProblemDetailsService problemDetails, IOptions<JsonOptions> json, ILogger<OpenAiExceptionHandler> logger)
    : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken cancellationToken)
    {
        var error = exception switch
        {
            ApiException api => api,
            ContractViolation violation => ApiException.InvalidRequest(violation.Message, violation.Param),
            // A client that went away gets no answer; its half-read body is not the server's error.
            _ when context.RequestAborted.IsCancellationRequested =>
                new ApiException(499, "The client closed the request.", "invalid_request_error"),
            BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge } =>
                new ApiException(413, "The request body is larger than this server accepts.", "invalid_request_error", null, "request_too_large"),
            BadHttpRequestException bad => new ApiException(bad.StatusCode is >= 400 and < 500 ? bad.StatusCode : 400,
                BadRequestMessage(bad), "invalid_request_error", JsonParam(bad), "invalid_request"),
            _ when StoredValueError(exception) is { } message => ApiException.InvalidRequest(message, null, "invalid_value"),
            _ => null,
        };
        if (error is null)
        {
            logger.LogError(exception, "Unhandled error on {Method} {Path}", context.Request.Method, context.Request.Path);
            error = new ApiException(500, "The server had an error while processing your request.", "server_error");
        }
        if (context.Response.HasStarted) return true;

        context.Response.StatusCode = error.StatusCode;
        if (OpenAiRoutes.Matches(context.Request.Path))
        {
            await context.Response.WriteAsJsonAsync(OpenAiError.From(error), json.Value.SerializerOptions, cancellationToken);
            return true;
        }
        return await problemDetails.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            Exception = exception,
            ProblemDetails = { Status = error.StatusCode, Title = error.Message, Type = error.Type },
        });
    }

    /// <summary>Binding failures wrap the JSON reader's message, which names the offending property and position.</summary>
    private static string BadRequestMessage(BadHttpRequestException bad) =>
        bad.InnerException is JsonException json ? $"Invalid JSON body: {json.Message}" : bad.Message;

    /// <summary>The body field a JSON binding failure points at (<c>$.seed</c> → <c>seed</c>), as OpenAI's <c>param</c>.</summary>
    private static string? JsonParam(BadHttpRequestException bad) =>
        bad.InnerException is JsonException { Path: { Length: > 2 } path } && path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : null;

    /// <summary>
    /// PostgreSQL refusing a value the client sent (a NUL character in text or JSON, a string longer than its column):
    /// a request the validation let through, still the client's input and never a server error.
    /// </summary>
    private static string? StoredValueError(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is EncoderFallbackException) return "The request contains text that is not valid Unicode (a lone surrogate escape).";
            if (e is PostgresException postgres)
                return postgres.SqlState switch
                {
                    PostgresErrorCodes.UntranslatableCharacter or PostgresErrorCodes.CharacterNotInRepertoire =>
                        "The request contains a character this service cannot store (such as U+0000).",
                    PostgresErrorCodes.StringDataRightTruncation => "A value in the request is longer than this service accepts.",
                    _ => null,
                };
        }
        return null;
    }
}

internal static class OpenAiRoutes
{
    public static bool Matches(PathString path) => path.StartsWithSegments("/v1");
}
