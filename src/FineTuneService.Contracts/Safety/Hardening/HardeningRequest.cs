using System.Text.Json;
using System.Text.RegularExpressions;

namespace FineTuneService.Contracts.Safety.Hardening;

/// <summary>
/// A validated request to harden base model <see cref="BaseModel"/> with <see cref="Method"/>, producing the base model
/// <see cref="HardenedModel"/> (<c>{base}-{suffix}</c>, e.g. <c>safetune-tiny-booster</c>). Both the admin API and
/// <c>fts harden</c> build it here, so both refuse the same requests.
/// </summary>
public sealed partial record HardeningRequest(string BaseModel, HardeningMethodDescriptor Method, IHardeningParams Params, string Suffix)
{
    /// <summary>
    /// File of a hardened model folder with its lineage (hardened_from, method, params, seed, report): written by the
    /// hardening, read by the base-model import, which lists it with the model.
    /// </summary>
    public const string LineageFile = "hardening.json";

    /// <summary>Longest suffix; with the base id it names a base model, which clients send as <c>model</c>.</summary>
    public const int MaxSuffixLength = 40;

    public string HardenedModel => $"{BaseModel}-{Suffix}";

    /// <summary>
    /// Reads <c>{"method": "booster", "params": {…}, "suffix": "booster"}</c>; the suffix defaults to the method's name.
    /// </summary>
    /// <exception cref="ContractViolation">With <c>param</c> method, params.&lt;field&gt; or suffix.</exception>
    public static HardeningRequest Parse(string baseModel, string? method, JsonElement? parameters, string? suffix)
    {
        var registry = HardeningMethods.Registry;
        if (string.IsNullOrWhiteSpace(method))
            throw new ContractViolation("method", $"method is required: one of {string.Join(", ", registry.Names)}.");
        var descriptor = registry.Find(method)
            ?? throw new ContractViolation("method", $"Unknown hardening method '{method}': one of {string.Join(", ", registry.Names)}.");
        var bound = descriptor.Bind(parameters);
        suffix ??= descriptor.Name;
        if (suffix.Length is 0 or > MaxSuffixLength || !SuffixPattern().IsMatch(suffix))
            throw new ContractViolation("suffix", $"suffix must be 1 to {MaxSuffixLength} lowercase letters, digits, '-' or '.', starting with a letter or digit.");
        return new HardeningRequest(baseModel, descriptor, bound, suffix);
    }

    [GeneratedRegex("^[a-z0-9][a-z0-9.-]*$")]
    private static partial Regex SuffixPattern();
}
