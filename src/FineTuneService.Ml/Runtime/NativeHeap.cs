using System.Runtime.InteropServices;

namespace FineTuneService.Ml.Runtime;

/// <summary>
/// Keeps glibc's malloc from mapping and unmapping libtorch's large activation buffers on every training step: with
/// the defaults each step faults in its activations afresh, which made step times vary by up to half
/// (docs/benchmarks/engine/malloc.md). Freed memory stays in the process heap for the next step instead of going back
/// to the kernel, so RSS stays near its peak; that is why only the CLI host applies it for now. One arena, because
/// with per-thread arenas some runs still faulted their buffers in afresh and others did not.
/// </summary>
public static partial class NativeHeap
{
    private const int TrimThreshold = -1, MmapMax = -4, ArenaMax = -8; // M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX from malloc.h

    /// <summary>Whether this process runs with the tuning (the last <see cref="ReuseFreedMemory"/> applied it).</summary>
    public static bool Applied { get; private set; }

    /// <summary>Applies the tuning unless the operator set any MALLOC_* variable; true when applied.</summary>
    public static bool ReuseFreedMemory()
    {
        if (!OperatingSystem.IsLinux() || OperatorTuned()) return Applied = false;
        // mallopt acts at once; the MALLOC_* environment variables are read only when malloc initialises.
        return Applied = mallopt(MmapMax, 0) == 1 && mallopt(TrimThreshold, int.MaxValue) == 1 && mallopt(ArenaMax, 1) == 1;
    }

    private static bool OperatorTuned() =>
        Environment.GetEnvironmentVariables().Keys.Cast<string>().Any(k => k.StartsWith("MALLOC_", StringComparison.Ordinal) || k == "GLIBC_TUNABLES");

    [LibraryImport("libc", EntryPoint = "mallopt")]
    private static partial int mallopt(int parameter, int value);
}
