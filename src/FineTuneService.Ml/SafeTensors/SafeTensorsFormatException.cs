namespace FineTuneService.Ml.SafeTensors;

/// <summary>A safetensors file or shard index that does not follow the format.</summary>
public sealed class SafeTensorsFormatException(string message) : Exception(message);
