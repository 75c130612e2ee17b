using System.Text.Json;
using System.Text.Json.Nodes;

namespace FineTuneService.Contracts.Jobs;

/// <summary>Wire names of <c>method.type</c>.</summary>
public static class MethodTypes
{
    public const string Supervised = "supervised";

    /// <summary>Preference fine-tuning; recognised (a preference file is refused for supervised jobs) but not yet accepted.</summary>
    public const string Dpo = "dpo";

    public static IReadOnlyList<string> All { get; } = [Supervised];
}

/// <summary>
/// The job's training method, in OpenAI's shape: <c>{type, supervised: {hyperparameters, adapter?}}</c>, one optional
/// member per method type (a DPO method is one more record beside <see cref="Supervised"/>). The hyperparameters are
/// the requested ones; the job keeps its resolved ones beside it.
/// </summary>
public sealed record JobMethod
{
    public string Type { get; init; } = MethodTypes.Supervised;
    public SupervisedMethod? Supervised { get; init; }

    /// <summary>The hyperparameters of the method in use.</summary>
    public Hyperparameters Hyperparameters => Supervised?.Hyperparameters ?? Hyperparameters.Auto;

    /// <summary>LoRA settings; null for a full fine-tune.</summary>
    public LoraSettings? Adapter => Supervised?.Adapter;

    public static JobMethod Default { get; } = new() { Supervised = new SupervisedMethod() };

    public JobMethod WithHyperparameters(Hyperparameters hyperparameters) =>
        this with { Supervised = (Supervised ?? new SupervisedMethod()) with { Hyperparameters = hyperparameters } };

    /// <summary>
    /// Reads the request's <c>method</c> and legacy top-level <c>hyperparameters</c> (one or the other, not both).
    /// </summary>
    /// <exception cref="ContractViolation">What is wrong, with its <c>param</c>.</exception>
    public static JobMethod FromRequest(JsonObject? method, JsonObject? hyperparameters)
    {
        JsonObject? fromMethod = null;
        JsonNode? adapter = null;
        if (method is not null)
        {
            var type = method["type"]?.GetValueKind() == JsonValueKind.String ? method["type"]!.GetValue<string>() : null;
            if (!MethodTypes.All.Contains(type))
                throw new ContractViolation("method.type", $"Only method.type {string.Join(", ", MethodTypes.All.Select(t => $"'{t}'"))} is supported.");
            fromMethod = method["supervised"]?["hyperparameters"] as JsonObject;
            adapter = method["supervised"]?["adapter"];
        }
        if (fromMethod is not null && hyperparameters is not null)
            throw new ContractViolation("hyperparameters",
                "Give hyperparameters either at the top level or in method.supervised.hyperparameters, not both.");
        var requested = fromMethod is not null
            ? Hyperparameters.FromRequest(fromMethod, "method.supervised.hyperparameters")
            : Hyperparameters.FromRequest(hyperparameters, "hyperparameters");
        return new JobMethod
        {
            Supervised = new SupervisedMethod { Hyperparameters = requested, Adapter = LoraSettings.FromRequest(adapter, "method.supervised.adapter") },
        };
    }

    /// <summary>
    /// Reads a stored method (the wire shape). Rows are written by <see cref="FromRequest"/>, so they read back the
    /// same; a part that no longer passes (a bound tightened since) reads as its default rather than making the row
    /// unreadable.
    /// </summary>
    public static JobMethod FromStored(string json)
    {
        var root = JsonNode.Parse(json) as JsonObject;
        var supervised = root?["supervised"] as JsonObject;
        return new JobMethod
        {
            Type = root?["type"] is JsonValue type && type.GetValueKind() == JsonValueKind.String ? type.GetValue<string>() : MethodTypes.Supervised,
            Supervised = new SupervisedMethod
            {
                Hyperparameters = Lenient(() => Hyperparameters.FromRequest(supervised?["hyperparameters"] as JsonObject, "hyperparameters"), Hyperparameters.Auto),
                Adapter = Lenient(() => LoraSettings.FromRequest(supervised?["adapter"]?.DeepClone(), "adapter"), null),
            },
        };
    }

    private static T Lenient<T>(Func<T> read, T fallback)
    {
        try
        {
            return read();
        }
        catch (ContractViolation)
        {
            return fallback;
        }
    }

    public string ToJsonString() => ToJson().ToJsonString();

    /// <summary>The wire shape, "auto" for unresolved hyperparameters.</summary>
    public JsonObject ToJson()
    {
        var supervised = new JsonObject { ["hyperparameters"] = Hyperparameters.ToJson() };
        if (Adapter is { } adapter) supervised["adapter"] = adapter.ToJson();
        return new JsonObject { ["type"] = Type, ["supervised"] = supervised };
    }
}

/// <summary><c>method.supervised</c>: SFT with its hyperparameters, as a full fine-tune or a LoRA adapter.</summary>
public sealed record SupervisedMethod
{
    public Hyperparameters Hyperparameters { get; init; } = Hyperparameters.Auto;
    public LoraSettings? Adapter { get; init; }
}
