using System.Runtime.CompilerServices;
using FineTuneService.Ml.Runtime;

namespace FineTuneService.Ml.Tests;

internal static class TorchThreadSetup
{
#pragma warning disable CA2255 // the test assembly's initializer runs before any test loads libtorch
    [ModuleInitializer]
    internal static void BeforeLibtorchLoads() => CpuThreadWaits.UsePassiveWaits();
#pragma warning restore CA2255
}
