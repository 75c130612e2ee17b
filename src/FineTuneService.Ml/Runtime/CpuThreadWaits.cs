using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace FineTuneService.Ml.Runtime;

/// <summary>
/// Makes libtorch's OpenMP threads sleep between parallel regions instead of spinning (<c>OMP_WAIT_POLICY=PASSIVE</c>),
/// unless the operator set <c>OMP_WAIT_POLICY</c> already. A spinning thread holds its core for a while after every
/// operation; when the API host, the worker's HTTP threads, a load client or another process share the cores, that
/// spin takes the CPU the others need, and measured decoding on 2 busy cores ran up to 20× slower
/// (docs/benchmarks/inference/omp-wait-policy.md).
/// </summary>
public static partial class CpuThreadWaits
{
    public const string Variable = "OMP_WAIT_POLICY";

    /// <summary>
    /// Sets the policy in the native environment, which libgomp reads once, when libtorch loads; after that it has no
    /// effect. Hosts call it from a module initializer, and this assembly's own initializer calls it too.
    /// </summary>
    public static void UsePassiveWaits()
    {
        if (!OperatingSystem.IsLinux() || NativePolicy() is not null) return;
        // .NET's Environment.SetEnvironmentVariable does not reach the C environment libgomp reads.
        _ = setenv(Variable, "PASSIVE", overwrite: 0);
    }

    /// <summary>The policy as native code sees it, or null when unset.</summary>
    public static string? NativePolicy() => OperatingSystem.IsLinux() ? Marshal.PtrToStringUTF8(getenv(Variable)) : Environment.GetEnvironmentVariable(Variable);

#pragma warning disable CA2255 // a library initializer is the point: it must run before anything loads libtorch
    [ModuleInitializer]
    internal static void ApplyOnLoad() => UsePassiveWaits();
#pragma warning restore CA2255

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int setenv(string name, string value, int overwrite);

    [LibraryImport("libc", EntryPoint = "getenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr getenv(string name);
}
