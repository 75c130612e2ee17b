using System.Text.Json.Nodes;
using FineTuneService.Ml.Lora;

namespace FineTuneService.Worker.Training;

/// <summary>The job's <c>method.supervised.adapter</c> (validated by the API) as a LoRA config; null = full fine-tune.</summary>
public static class JobAdapter
{
    /// <summary>Folder inside the saved model that keeps the trained adapter in PEFT's files, beside the merged weights.</summary>
    public const string AdapterFolder = Core.Artifacts.ModelArchive.AdapterFolder;

    public static LoraConfig? From(JsonObject? method, string baseModelReference)
    {
        if (method?["supervised"]?["adapter"] is not JsonObject adapter || adapter["type"]?.GetValue<string>() != "lora") return null;
        return new LoraConfig
        {
            Rank = adapter["rank"]!.GetValue<int>(),
            Alpha = adapter["alpha"]!.GetValue<double>(),
            Dropout = adapter["dropout"]!.GetValue<double>(),
            TargetModules = adapter["target_modules"]!.AsArray().Select(t => t!.GetValue<string>()).ToArray(),
            BaseModelNameOrPath = baseModelReference,
        };
    }
}
