namespace FineTuneService.Contracts;

/// <summary>
/// A request that breaks the API↔worker contract. <see cref="Param"/> names the offending field as OpenAI's error
/// envelope does (<c>safety.params.antidote.dense_ratio</c>); the message says what to fix. The API answers it with a
/// 400; the worker, which runs the same checks with what it knows about the model, fails the job with it.
/// </summary>
public sealed class ContractViolation(string param, string message) : Exception(message)
{
    public string Param { get; } = param;
}
