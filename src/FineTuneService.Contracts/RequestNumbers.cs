using System.Text.Json;
using System.Text.Json.Nodes;

namespace FineTuneService.Contracts;

/// <summary>The one number check of request fields (hyperparameters, adapter settings, evaluation sizes).</summary>
internal static class RequestNumbers
{
    /// <summary>A JSON number within [min, max] (an integer when asked), or a violation naming <paramref name="param"/>.</summary>
    public static double Read(JsonNode value, string param, bool integer, double min, double max, bool orAuto = false)
    {
        if (value.GetValueKind() != JsonValueKind.Number)
            throw new ContractViolation(param, $"{param} must be a number{(orAuto ? " or \"auto\"" : "")}.");
        return Check(value.GetValue<double>(), param, integer, min, max, orAuto);
    }

    public static double Check(double number, string param, bool integer, double min, double max, bool orAuto = false)
    {
        if (integer && number != Math.Floor(number))
            throw new ContractViolation(param, $"{param} must be an integer{(orAuto ? " or \"auto\"" : "")}.");
        if (number < min || number > max)
            throw new ContractViolation(param, $"{param} must be between {min} and {max}{(orAuto ? ", or \"auto\"" : "")}.");
        return number;
    }
}
