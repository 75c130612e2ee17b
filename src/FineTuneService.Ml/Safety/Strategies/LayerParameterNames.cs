using System.Globalization;
using System.Text.RegularExpressions;

namespace FineTuneService.Ml.Safety.Strategies;

/// <summary>
/// Reads Hugging Face checkpoint names (<c>model.layers.3.self_attn.q_proj.weight</c>, PEFT
/// <c>….q_proj.lora_A.weight</c>), which are also our module field paths.
/// </summary>
public static partial class LayerParameterNames
{
    [GeneratedRegex(@"(?:^|\.)layers\.(\d+)\.", RegexOptions.CultureInvariant)]
    private static partial Regex LayerPattern();

    /// <summary>Decoder layer index of a parameter, or null outside the decoder layers.</summary>
    public static int? LayerIndex(string name)
    {
        var match = LayerPattern().Match(name);
        return match.Success ? int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) : null;
    }

    /// <summary>Whether the parameter belongs to the attention or MLP block of a decoder layer (weights, biases, adapters).</summary>
    public static bool IsAttentionOrMlp(string name) =>
        LayerIndex(name) is not null && (name.Contains(".self_attn.", StringComparison.Ordinal) || name.Contains(".mlp.", StringComparison.Ordinal));

    public static bool IsLoraA(string name) => name.Contains(".lora_A.", StringComparison.Ordinal) || name.EndsWith(".lora_A", StringComparison.Ordinal);

    public static bool IsLoraB(string name) => name.Contains(".lora_B.", StringComparison.Ordinal) || name.EndsWith(".lora_B", StringComparison.Ordinal);

    public static bool IsLoraFactor(string name) => IsLoraA(name) || IsLoraB(name);

    /// <summary>Module path of a parameter: the name without its last segment (<c>.weight</c>, <c>.bias</c>).</summary>
    public static string ModuleOf(string parameterName)
    {
        var dot = parameterName.LastIndexOf('.');
        return dot < 0 ? parameterName : parameterName[..dot];
    }

    /// <summary>The linear module a LoRA factor adapts: <c>x.q_proj.lora_A.weight</c> → <c>x.q_proj</c>.</summary>
    public static string AdaptedModuleOf(string loraParameterName)
    {
        foreach (var marker in (string[])[".lora_A", ".lora_B"])
        {
            var at = loraParameterName.IndexOf(marker, StringComparison.Ordinal);
            if (at >= 0) return loraParameterName[..at];
        }
        throw new ArgumentException($"'{loraParameterName}' is not a LoRA factor.", nameof(loraParameterName));
    }
}
