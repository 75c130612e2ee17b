namespace FineTuneService.Api.Errors;

/// <summary>An error the API reports to the caller as OpenAI's error envelope.</summary>
public sealed class ApiException(int statusCode, string message, string type, string? param = null, string? code = null)
    : Exception(message)
{
    public int StatusCode { get; } = statusCode;
    public string Type { get; } = type;
    public string? Param { get; } = param;
    public string? Code { get; } = code;

    public static ApiException InvalidRequest(string message, string? param = null, string? code = null) =>
        new(StatusCodes.Status400BadRequest, message, "invalid_request_error", param, code);

    /// <summary>The same answer whether the resource never existed or belongs to another tenant.</summary>
    public static ApiException NotFound(string what, string id, string? param = null) =>
        new(StatusCodes.Status404NotFound, $"No such {what}: {id}", "invalid_request_error", param, "not_found");

    public static ApiException InvalidApiKey() =>
        new(StatusCodes.Status401Unauthorized,
            "Incorrect API key provided. Send it as 'Authorization: Bearer <key>'.", "invalid_request_error", null, "invalid_api_key");
}
