using FineTuneService.Research.Benchmarks;
using Microsoft.Extensions.Logging;

namespace FineTuneService.Cli.Commands;

/// <summary>What the benchmark commands share: option checks, torch threads, console logging, the machine line, resuming.</summary>
internal static class BenchCommandSupport
{
    /// <exception cref="CliUsageException">Any problem, all of them in one message.</exception>
    public static void RequireValid(IEnumerable<string> problems)
    {
        var all = problems.ToArray();
        if (all.Length > 0) throw new CliUsageException(string.Join(" ", all));
    }

    /// <summary>Sets torch's intra-op threads when <paramref name="threads"/> is positive (0: torch's default).</summary>
    public static void UseThreads(int threads)
    {
        if (threads > 0) TorchSharp.torch.set_num_threads(threads);
    }

    public static ILoggerFactory ConsoleLogging() =>
        LoggerFactory.Create(b => b.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; }));

    /// <summary>The safety evaluation's --xstest-prompts and --sst2-prompts over <paramref name="evaluation"/>'s counts.</summary>
    public static SafetyBenchmarkOptions WithPromptCounts(SafetyBenchmarkOptions evaluation, CliArguments arguments) => evaluation with
    {
        XsTestPrompts = arguments.GetInt("xstest-prompts", evaluation.XsTestPrompts),
        Sst2DevPrompts = arguments.GetInt("sst2-prompts", evaluation.Sst2DevPrompts),
    };

    /// <summary>A comma-separated option value, entries trimmed, empty ones dropped.</summary>
    public static List<string> List(string text) => text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();

    /// <summary>The 1, 5 and 15 minute load averages, or "n/a" off Linux.</summary>
    public static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

    /// <summary>The machine line a resumable benchmark stores with each run: wall times compare only under one.</summary>
    public static string EnvironmentAtStart() =>
        $"{Environment.ProcessorCount} logical CPUs, torch threads {TorchSharp.torch.get_num_threads()}, load average {LoadAverage()} at start, {TimeProvider.System.GetUtcNow():yyyy-MM-dd HH:mm} UTC";

    /// <summary>Runs a resumable benchmark; stopped (Ctrl+C), the results stored so far, so their tables can still be written.</summary>
    public static TResults RunOrLoadStored<TResults>(Func<TResults> run, Func<TResults> loadStored)
    {
        try
        {
            return run();
        }
        catch (OperationCanceledException)
        {
            Console.WriteLine("stopped; re-run the same command to continue");
            return loadStored();
        }
    }
}
