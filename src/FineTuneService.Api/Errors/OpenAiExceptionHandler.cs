using FineTuneService.Contracts;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.Options;

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
            BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge } =>
                new ApiException(413, "The request body is larger than this server accepts.", "invalid_request_error", null, "request_too_large"),
            BadHttpRequestException bad => ApiException.InvalidRequest(BadRequestMessage(bad), null, "invalid_request"),
            OperationCanceledException when context.RequestAborted.IsCancellationRequested =>
                new ApiException(499, "The client closed the request.", "invalid_request_error"),
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
        bad.InnerException is System.Text.Json.JsonException json ? $"Invalid JSON body: {json.Message}" : bad.Message;
}

internal static class OpenAiRoutes
{
    public static bool Matches(PathString path) => path.StartsWithSegments("/v1");
}
