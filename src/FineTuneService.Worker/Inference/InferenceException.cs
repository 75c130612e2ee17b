namespace FineTuneService.Worker.Inference;

/// <summary>A chat request the server answers with an OpenAI error envelope instead of a completion.</summary>
public sealed class InferenceException(int statusCode, string code, string message, string? param = null, Exception? inner = null)
    : Exception(message, inner)
{
    public int StatusCode { get; } = statusCode;
    public string Code { get; } = code;
    public string? Param { get; } = param;
    public string Type => StatusCode < 500 ? "invalid_request_error" : "server_error";

    public static InferenceException ContextLength(string message, string param) => new(400, "context_length_exceeded", message, param);
}
