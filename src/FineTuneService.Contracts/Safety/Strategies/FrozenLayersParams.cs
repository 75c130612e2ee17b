using System.ComponentModel;

namespace FineTuneService.Contracts.Safety;

/// <summary>
/// <c>frozen_layers</c> (SPPFT): freeze the attention and MLP weights of the safety layers before training. Either
/// give the inclusive range <see cref="FirstLayer"/>..<see cref="LastLayer"/>, or leave both out to use the range
/// located for the base model.
/// </summary>
public sealed record FrozenLayersParams(
    [property: Description("First frozen layer (0-based, inclusive); with last_layer, or neither to use the located safety layers.")]
    int? FirstLayer = null,
    [property: Description("Last frozen layer (inclusive), below the model's layer count.")]
    int? LastLayer = null) : ISafetyStrategyParams
{
    public IEnumerable<ParamError> Errors(ModelFacts model)
    {
        if (FirstLayer is null != LastLayer is null)
            yield return new(FirstLayer is null ? "first_layer" : "last_layer",
                "first_layer and last_layer must be given together (or both left out to use the located safety layers).");
        if (FirstLayer < 0) yield return new("first_layer", $"first_layer must be >= 0, got {FirstLayer}.");
        if (LastLayer < FirstLayer) yield return new("last_layer", $"last_layer must be >= first_layer, got {FirstLayer}..{LastLayer}.");
        if (LastLayer >= model.LayerCount)
            yield return new("last_layer", $"last_layer must be below the model's {model.LayerCount} layers, got {LastLayer}.");
        if (FirstLayer is null && LastLayer is null && model.SafetyLayersLocated == false)
            yield return new(null, "first_layer and last_layer are required: no safety layers are located for this base model.");
    }
}
