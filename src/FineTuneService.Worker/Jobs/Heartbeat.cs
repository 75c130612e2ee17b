using Microsoft.Extensions.Logging;

namespace FineTuneService.Worker.Jobs;

/// <summary>
/// Beats a worker's hold on a row (a job, a stand-alone evaluation) every interval on a background loop, until
/// disposed or until a beat reports that the hold is gone. A beat that throws is logged and retried at the next
/// tick: only a heartbeat silent for the whole stale timeout gets the row recovered by another worker.
/// </summary>
internal sealed class Heartbeat : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    /// <param name="beat">One beat; false when the row is no longer this worker's, which ends the loop.</param>
    public Heartbeat(TimeSpan interval, TimeProvider clock, Func<CancellationToken, Task<bool>> beat, ILogger logger, string subject) =>
        _loop = RunAsync(interval, clock, beat, logger, subject);

    private async Task RunAsync(TimeSpan interval, TimeProvider clock, Func<CancellationToken, Task<bool>> beat, ILogger logger, string subject)
    {
        using var timer = new PeriodicTimer(interval, clock);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token))
            {
                try
                {
                    if (!await beat(_stop.Token)) return;
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    logger.LogWarning(e, "{Subject}: heartbeat failed", subject);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        _stop.Dispose();
    }
}
