namespace FineTuneService.Api.Errors;

/// <summary>OpenAI's error envelope: <c>{"error": {"message", "type", "param", "code"}}</c>.</summary>
public sealed record OpenAiError(OpenAiErrorBody Error)
{
    public static OpenAiError From(ApiException e) => new(new OpenAiErrorBody(e.Message, e.Type, e.Param, e.Code));
}

public sealed record OpenAiErrorBody(string Message, string Type, string? Param, string? Code);
