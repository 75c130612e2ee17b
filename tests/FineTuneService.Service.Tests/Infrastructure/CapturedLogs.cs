using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace FineTuneService.Service.Tests.Infrastructure;

/// <summary>
/// A logger provider that keeps every entry a host writes at <see cref="LogLevel.Warning"/> or above, so a test can
/// assert that an operation logs no errors. Register it as an <see cref="ILoggerProvider"/> in the host's services.
/// </summary>
public sealed class CapturedLogs : ILoggerProvider
{
    private readonly ConcurrentQueue<(LogLevel Level, string Category, string Message)> _entries = new();

    public IReadOnlyList<(LogLevel Level, string Category, string Message)> Entries => [.. _entries];

    /// <summary>Error and Critical entries, as "category: message" lines.</summary>
    public IReadOnlyList<string> Errors =>
        _entries.Where(e => e.Level >= LogLevel.Error).Select(e => $"{e.Category}: {e.Message}").ToList();

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(CapturedLogs logs, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel)) logs._entries.Enqueue((logLevel, category, formatter(state, exception)));
        }
    }
}
