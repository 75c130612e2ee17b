using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace FineTuneService.Service.Tests.Infrastructure;

/// <summary>
/// The worker host (<c>FineTuneService.Worker.dll</c>, its real <c>Program.cs</c>) as a child process on a test
/// database, configured through environment variables as a container would be. Tests stop it the ways production
/// does: <see cref="TerminateAsync"/> (SIGTERM: docker stop, a rolling restart) or <see cref="Kill"/> (SIGKILL: a
/// crash, the OOM killer). Its console output is kept for failure messages.
/// </summary>
public sealed class WorkerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private WorkerProcess(Process process)
    {
        _process = process;
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    /// <summary>Everything the process wrote to stdout and stderr so far.</summary>
    public string Output
    {
        get
        {
            lock (_output) return _output.ToString();
        }
    }

    /// <summary>
    /// Starts the worker on <paramref name="connectionString"/> with short test cadences (the same as the in-process
    /// <c>WorkerHost</c>), in Development, with plain console logs; <paramref name="settings"/> are configuration
    /// keys (<c>Worker:Devices:0</c>) that override them.
    /// </summary>
    public static WorkerProcess Start(string connectionString, string modelCache, IDictionary<string, string?>? settings = null)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = WorkerDirectory(),
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("FineTuneService.Worker.dll");
        var environment = new TestWorkerSettings(modelCache)
        {
            ["DOTNET_ENVIRONMENT"] = "Development",
            ["ASPNETCORE_ENVIRONMENT"] = "Development",
            ["ASPNETCORE_URLS"] = "http://127.0.0.1:0",
            // One intra-op thread, as the in-process tests use: on a busy 2-core machine more mostly spin.
            ["OMP_NUM_THREADS"] = "1",
            ["ConnectionStrings:Postgres"] = connectionString,
            ["Database:MigrateOnStartup"] = "true",
            ["Worker:Devices:0"] = "cpu",
            ["Worker:RecoveryInterval"] = TestWorkerSettings.FastRecoveryInterval,
            ["Worker:CheckpointEverySteps"] = "5",
            ["Worker:MetricsEverySteps"] = "2",
            ["Logging:LogLevel:Default"] = "Information",
            ["Logging:LogLevel:Microsoft"] = "Warning",
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>()) environment[key] = value;
        foreach (var (key, value) in environment) start.Environment[key.Replace(":", "__")] = value;
        return new WorkerProcess(Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start"));
    }

    /// <summary>Sends SIGTERM, as <c>docker stop</c> does, and waits for the process to exit.</summary>
    public async Task<int> TerminateAsync(TimeSpan timeout)
    {
        if (Signal(_process.Id, SigTerm) != 0) throw new InvalidOperationException($"kill -TERM {_process.Id} failed: {Marshal.GetLastPInvokeError()}");
        return await WaitForExitAsync(timeout);
    }

    /// <summary>SIGKILL: the process dies at once, mid-step, without any clean-up.</summary>
    public void Kill() => _process.Kill(entireProcessTree: true);

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"The worker process did not exit within {timeout}. Output:\n{Output}");
        }
        _process.WaitForExit(); // drains the redirected output
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }

    private void Append(string? line)
    {
        if (line is null) return;
        lock (_output) _output.AppendLine(line);
    }

    /// <summary>The worker's own build output (same configuration as the tests), where its runtimeconfig lives.</summary>
    private static string WorkerDirectory()
    {
        var tests = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var framework = tests.Name;                // net10.0
        var configuration = tests.Parent!.Name;    // Release or Debug
        var worker = Path.Combine(PostgresServer.RepositoryRoot(), "src", "FineTuneService.Worker", "bin", configuration, framework);
        return File.Exists(Path.Combine(worker, "FineTuneService.Worker.dll"))
            ? worker
            : throw new FileNotFoundException($"Build the worker host first: {worker}/FineTuneService.Worker.dll is missing.");
    }

    private const int SigTerm = 15;

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Signal(int pid, int signal);
}
