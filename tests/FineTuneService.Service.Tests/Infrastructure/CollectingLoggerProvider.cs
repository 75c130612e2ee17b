using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace FineTuneService.Service.Tests.Infrastructure;

/// <summary>Keeps the log entries of a host at or above <paramref name="minimum"/>, for tests that assert on what was logged.</summary>
public sealed class CollectingLoggerProvider(LogLevel minimum = LogLevel.Warning) : ILoggerProvider
{
    public sealed record Entry(string Category, LogLevel Level, string Message, Exception? Exception)
    {
        public override string ToString() => $"{Level} {Category}: {Message} {Exception}";
    }

    public ConcurrentQueue<Entry> Entries { get; } = new();

    public LogLevel Minimum { get; } = minimum;

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, this);

    public void Dispose() { }

    private sealed class Logger(string category, CollectingLoggerProvider owner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= owner.Minimum;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel)) owner.Entries.Enqueue(new Entry(category, logLevel, formatter(state, exception), exception));
        }
    }
}
