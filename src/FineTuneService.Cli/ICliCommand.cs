namespace FineTuneService.Cli;

/// <summary>
/// One `fts` verb. Commands are discovered by reflection, so adding one is adding a class; Program.cs never changes.
/// </summary>
public interface ICliCommand
{
    /// <summary>Words that select the command, e.g. "bootstrap build" or "bench engine".</summary>
    string Name { get; }
    string Description { get; }
    /// <summary>Usage text shown by `fts help`.</summary>
    string Usage { get; }
    Task<int> RunAsync(CliArguments arguments, CancellationToken cancellationToken);
}
