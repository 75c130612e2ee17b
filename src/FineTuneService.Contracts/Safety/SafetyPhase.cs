namespace FineTuneService.Contracts.Safety;

/// <summary>When a safety strategy acts on a training run. Strategies run in phase order, whatever the request's order.</summary>
public enum SafetyPhase
{
    /// <summary>Before the optimizer is built, e.g. freezing parameters.</summary>
    BeforeTraining,

    /// <summary>On every optimizer step, between backward and the update, e.g. editing gradients.</summary>
    EveryStep,

    /// <summary>After the last step, changing the trained weights (each such step is evaluated as its own stage).</summary>
    AfterTraining,
}

/// <summary>
/// What is known about the model a job trains, to bound strategy parameters; null where the caller cannot know it.
/// The API knows the layer count from the base model's config and whether the job trains a LoRA adapter; the worker
/// also knows whether safety layers are located.
/// </summary>
public sealed record ModelFacts(int? LayerCount = null, bool? SafetyLayersLocated = null, bool? LoraAdapter = null)
{
    public static ModelFacts Unknown { get; } = new();
}
