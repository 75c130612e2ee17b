using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using TorchSharp;

namespace FineTuneService.Worker.Training;

/// <summary>Maps a configured device name ("cpu", "cuda:N") to a torch device, falling back to CPU without CUDA.</summary>
public static partial class TrainingDevice
{
    [GeneratedRegex("^(cpu|cuda:[0-9]+)$", RegexOptions.IgnoreCase)]
    private static partial Regex Name();

    public static bool IsValidName(string name) => Name().IsMatch(name);

    public static torch.Device Resolve(string name, ILogger logger)
    {
        if (!IsValidName(name)) throw new ArgumentException($"'{name}' is not a device name (\"cpu\" or \"cuda:N\").", nameof(name));
        if (name.Equals("cpu", StringComparison.OrdinalIgnoreCase)) return torch.CPU;

        var index = int.Parse(name.AsSpan(5));
        if (!torch.cuda.is_available())
        {
            logger.LogWarning("Device {Device} is configured but CUDA is not available; training on the CPU", name);
            return torch.CPU;
        }
        var count = torch.cuda.device_count();
        if (index >= count)
        {
            logger.LogWarning("Device {Device} is configured but only {Count} CUDA device(s) exist; training on the CPU", name, count);
            return torch.CPU;
        }
        return torch.device(DeviceType.CUDA, index);
    }
}
