using System.Data.Common;
using FineTuneService.Worker.Jobs;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace FineTuneService.Service.Tests.Infrastructure;

/// <summary>
/// Holds a worker's training thread between two steps, so a test can act at an exact step whatever the machine's
/// speed. The worker reads the job's control flag after every step (<see cref="JobLease.ReadControl"/>); while the
/// gate is closed that read waits before it runs, so a pause or cancel written meanwhile is what it reads when the
/// gate opens. Register it on the worker host's DbContext (<c>ConfigureDbContext</c>).
/// </summary>
public sealed class TrainingStepGate : DbCommandInterceptor
{
    private readonly ManualResetEventSlim _open = new(initialState: true);
    private TaskCompletionSource _held = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>From now on, the next control read (after the next step) waits.</summary>
    public void Close()
    {
        _held = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _open.Reset();
    }

    /// <summary>Completes once the training thread is waiting at the gate.</summary>
    public Task WaitUntilHeldAsync(TimeSpan timeout) => _held.Task.WaitAsync(timeout);

    public void Open() => _open.Set();

    /// <summary>The control read is synchronous: it runs on the training thread, which may block here.</summary>
    public override InterceptionResult<DbDataReader> ReaderExecuting(DbCommand command, CommandEventData eventData,
        InterceptionResult<DbDataReader> result)
    {
        Hold(command);
        return result;
    }

    private void Hold(DbCommand command)
    {
        if (!command.CommandText.Contains(JobLease.ControlReadTag, StringComparison.Ordinal) || _open.IsSet) return;
        _held.TrySetResult();
        _open.Wait(TimeSpan.FromMinutes(5));
    }
}
