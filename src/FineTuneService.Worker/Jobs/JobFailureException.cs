using System.Text.Json.Nodes;

namespace FineTuneService.Worker.Jobs;

/// <summary>A job cannot go on, for a reason the tenant should read; becomes the job's OpenAI error object.</summary>
public sealed class JobFailureException(string code, string message, string? param = null, Exception? inner = null)
    : Exception(message, inner)
{
    public string Code { get; } = code;
    public string? Param { get; } = param;

    public JsonObject ToError() => Error(Code, Message, Param);

    public static JsonObject Error(string code, string message, string? param) => new()
    {
        ["code"] = code,
        ["message"] = message,
        ["param"] = param,
    };
}
