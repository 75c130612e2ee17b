namespace FineTuneService.Service.Tests.Infrastructure;

/// <summary>
/// Polls background work (Hangfire jobs, the worker) until a condition holds. The timeout is a deadline for giving
/// up, not a timing assertion: the last value comes back either way, so the caller's assertion says what state it saw.
/// </summary>
public static class Eventually
{
    public static async Task<T> UntilAsync<T>(Func<Task<T>> probe, Func<T, bool> done, TimeSpan timeout, TimeSpan? interval = null)
    {
        using var deadline = new CancellationTokenSource(timeout);
        while (true)
        {
            var value = await probe();
            if (done(value) || deadline.IsCancellationRequested) return value;
            await Task.Delay(interval ?? TimeSpan.FromMilliseconds(50));
        }
    }
}
