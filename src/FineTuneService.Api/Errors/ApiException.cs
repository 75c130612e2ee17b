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

    /// <summary>OpenAI's answer for a model the caller may not use, whether or not it exists (another tenant's, held, deleted, …).</summary>
    public static ApiException ModelNotFound(string modelId, string param = "model") =>
        new(StatusCodes.Status404NotFound, $"The model '{modelId}' does not exist or you do not have access to it.",
            "invalid_request_error", param, "model_not_found");

    public static ApiException InvalidApiKey() =>
        new(StatusCodes.Status401Unauthorized,
            "Incorrect API key provided. Send it as 'Authorization: Bearer <key>'.", "invalid_request_error", null, "invalid_api_key");
}
