using FineTuneService.Contracts.Jobs;
using FineTuneService.Ml.Lora;

namespace FineTuneService.Worker.Training;

/// <summary>The job's LoRA settings (validated by the API) as the engine's PEFT-compatible config; null = full fine-tune.</summary>
public static class JobAdapter
{
    /// <summary>Folder inside the saved model that keeps the trained adapter in PEFT's files, beside the merged weights.</summary>
    public const string AdapterFolder = Core.Artifacts.ModelArchive.AdapterFolder;

    public static LoraConfig? From(LoraSettings? adapter, string baseModelReference) => adapter is null ? null : new LoraConfig
    {
        Rank = adapter.Rank,
        Alpha = adapter.Alpha,
        Dropout = adapter.Dropout,
        TargetModules = adapter.TargetModules,
        BaseModelNameOrPath = baseModelReference,
    };
}
