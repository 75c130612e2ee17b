using System.Text.Json;
using System.Text.Json.Nodes;

namespace FineTuneService.Contracts.Jobs;

/// <summary>Wire names of <c>method.type</c>.</summary>
public static class MethodTypes
{
    public const string Supervised = "supervised";

    /// <summary>Preference fine-tuning (direct preference optimisation) on a preference file.</summary>
    public const string Dpo = "dpo";

    public static IReadOnlyList<string> All { get; } = [Supervised, Dpo];
}

/// <summary>
/// The job's training method, in OpenAI's shape: <c>{type, supervised: {hyperparameters, adapter?}}</c> or
/// <c>{type: "dpo", dpo: {hyperparameters: {beta, …}, adapter?}}</c>, one member per method type. The hyperparameters
/// are the requested ones; the job keeps its resolved ones beside it.
/// </summary>
public sealed record JobMethod
{
    public string Type { get; init; } = MethodTypes.Supervised;
    public SupervisedMethod? Supervised { get; init; }
    public DpoMethod? Dpo { get; init; }

    /// <summary>Whether the method trains on preference pairs (a preference file) rather than chat examples.</summary>
    public bool IsPreference => Type == MethodTypes.Dpo;

    /// <summary>The hyperparameters of the method in use.</summary>
    public Hyperparameters Hyperparameters => (IsPreference ? Dpo?.Hyperparameters : Supervised?.Hyperparameters) ?? Hyperparameters.Auto;

    /// <summary>LoRA settings; null for a full fine-tune.</summary>
    public LoraSettings? Adapter => IsPreference ? Dpo?.Adapter : Supervised?.Adapter;

    public static JobMethod Default { get; } = new() { Supervised = new SupervisedMethod() };

    /// <summary>
    /// The method with the job's hyperparameters; once they are resolved (training started) a DPO method's
    /// <c>beta</c> shows its resolved value too.
    /// </summary>
    public JobMethod WithHyperparameters(Hyperparameters hyperparameters)
    {
        if (!IsPreference)
            return this with { Supervised = (Supervised ?? new SupervisedMethod()) with { Hyperparameters = hyperparameters } };
        var dpo = (Dpo ?? new DpoMethod()) with { Hyperparameters = hyperparameters };
        var resolved = hyperparameters is { Epochs: not null, BatchSize: not null, LearningRateMultiplier: not null };
        return this with { Dpo = resolved ? dpo with { Beta = dpo.ResolvedBeta } : dpo };
    }

    /// <summary>
    /// Reads the request's <c>method</c> and legacy top-level <c>hyperparameters</c> (one or the other, not both).
    /// </summary>
    /// <exception cref="ContractViolation">What is wrong, with its <c>param</c>.</exception>
    public static JobMethod FromRequest(JsonObject? method, JsonObject? hyperparameters)
    {
        JsonObject? fromMethod = null;
        JsonNode? adapter = null;
        var type = MethodTypes.Supervised;
        if (method is not null)
        {
            type = method["type"]?.GetValueKind() == JsonValueKind.String ? method["type"]!.GetValue<string>() : null!;
            if (!MethodTypes.All.Contains(type))
                throw new ContractViolation("method.type", $"Only method.type {string.Join(", ", MethodTypes.All.Select(t => $"'{t}'"))} is supported.");
            fromMethod = method[type]?["hyperparameters"] as JsonObject;
            adapter = method[type]?["adapter"];
        }
        if (fromMethod is not null && hyperparameters is not null)
            throw new ContractViolation("hyperparameters",
                $"Give hyperparameters either at the top level or in method.{type}.hyperparameters, not both.");
        var param = fromMethod is not null ? $"method.{type}.hyperparameters" : "hyperparameters";
        var given = fromMethod ?? hyperparameters;
        var loraSettings = LoraSettings.FromRequest(adapter, $"method.{type}.adapter");
        if (type != MethodTypes.Dpo)
            return new JobMethod { Supervised = new SupervisedMethod { Hyperparameters = Hyperparameters.FromRequest(given, param), Adapter = loraSettings } };
        var (requested, beta) = DpoMethod.ReadHyperparameters(given, param);
        return new JobMethod { Type = MethodTypes.Dpo, Dpo = new DpoMethod { Hyperparameters = requested, Beta = beta, Adapter = loraSettings } };
    }

    /// <summary>
    /// Reads a stored method (the wire shape). Rows are written by <see cref="FromRequest"/>, so they read back the
    /// same; a part that no longer passes (a bound tightened since) reads as its default rather than making the row
    /// unreadable.
    /// </summary>
    public static JobMethod FromStored(string json)
    {
        var root = JsonNode.Parse(json) as JsonObject;
        var type = root?["type"] is JsonValue t && t.GetValueKind() == JsonValueKind.String ? t.GetValue<string>() : MethodTypes.Supervised;
        var member = root?[type] as JsonObject;
        var adapter = Lenient(() => LoraSettings.FromRequest(member?["adapter"]?.DeepClone(), "adapter"), null);
        if (type == MethodTypes.Dpo)
        {
            var (requested, beta) = Lenient(() => DpoMethod.ReadHyperparameters(member?["hyperparameters"] as JsonObject, "hyperparameters"), (Hyperparameters.Auto, null));
            return new JobMethod { Type = type, Dpo = new DpoMethod { Hyperparameters = requested, Beta = beta, Adapter = adapter } };
        }
        return new JobMethod
        {
            Type = type,
            Supervised = new SupervisedMethod
            {
                Hyperparameters = Lenient(() => Hyperparameters.FromRequest(member?["hyperparameters"] as JsonObject, "hyperparameters"), Hyperparameters.Auto),
                Adapter = adapter,
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
        var hyperparameters = Hyperparameters.ToJson();
        if (IsPreference)
            hyperparameters["beta"] = Dpo?.Beta is { } beta ? JsonValue.Create(beta) : "auto";
        var member = new JsonObject { ["hyperparameters"] = hyperparameters };
        if (Adapter is { } adapter) member["adapter"] = adapter.ToJson();
        return new JsonObject { ["type"] = Type, [IsPreference ? MethodTypes.Dpo : MethodTypes.Supervised] = member };
    }
}

/// <summary>
/// <c>method.dpo</c>: direct preference optimisation (Rafailov et al.) with the shared hyperparameters plus
/// <c>beta</c>, the strength of the pull towards the reference model; as a full fine-tune or a LoRA adapter.
/// </summary>
public sealed record DpoMethod
{
    /// <summary>OpenAI's and the paper's usual value.</summary>
    public const double DefaultBeta = 0.1;

    public Hyperparameters Hyperparameters { get; init; } = Hyperparameters.Auto;

    /// <summary>Requested beta; null for "auto".</summary>
    public double? Beta { get; init; }

    public LoraSettings? Adapter { get; init; }

    public double ResolvedBeta => Beta ?? DefaultBeta;

    /// <summary>Reads <c>{beta, n_epochs, batch_size, learning_rate_multiplier}</c>, each a number or "auto".</summary>
    internal static (Hyperparameters Hyperparameters, double? Beta) ReadHyperparameters(JsonObject? given, string param)
    {
        double? beta = null;
        if (given?["beta"] is { } value
            && !(value.GetValueKind() == JsonValueKind.String && value.GetValue<string>() == "auto")
            && value.GetValueKind() != JsonValueKind.Null)
            beta = RequestNumbers.Read(value, $"{param}.beta", integer: false, min: 1e-3, max: 10, orAuto: true);
        var rest = given?.DeepClone().AsObject();
        rest?.Remove("beta");
        return (Hyperparameters.FromRequest(rest, param), beta);
    }
}

/// <summary><c>method.supervised</c>: SFT with its hyperparameters, as a full fine-tune or a LoRA adapter.</summary>
public sealed record SupervisedMethod
{
    public Hyperparameters Hyperparameters { get; init; } = Hyperparameters.Auto;
    public LoraSettings? Adapter { get; init; }
}
