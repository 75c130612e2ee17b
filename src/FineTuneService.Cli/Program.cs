using System.Reflection;
using FineTuneService.Cli;
using FineTuneService.Ml.Runtime;

CpuThreadWaits.UsePassiveWaits(); // before libtorch loads: its OpenMP threads sleep between operations, not spin
NativeHeap.ReuseFreedMemory(); // training steps reuse freed heap instead of faulting in fresh mappings

var commands = typeof(ICliCommand).Assembly.GetTypes()
    .Where(t => t is { IsClass: true, IsAbstract: false } && typeof(ICliCommand).IsAssignableFrom(t))
    .Select(t => (ICliCommand)Activator.CreateInstance(t)!)
    .OrderBy(c => c.Name, StringComparer.Ordinal)
    .ToList();

// Longest match first, so "bench engine" wins over a hypothetical "bench".
var command = commands
    .OrderByDescending(c => c.Name.Split(' ').Length)
    .FirstOrDefault(c => c.Name.Split(' ').SequenceEqual(args.Take(c.Name.Split(' ').Length)));

if (command is null)
{
    Console.Error.WriteLine($"fts {Assembly.GetExecutingAssembly().GetName().Version} — FineTuneService operator commands\n");
    foreach (var c in commands) Console.Error.WriteLine($"  fts {c.Name,-28} {c.Description}\n      {c.Usage}");
    return args.Length == 0 || args[0] is "help" or "--help" ? 0 : 2;
}

// Options are read by name, so an unread --help would otherwise run the command with its defaults.
var commandArguments = args.Skip(command.Name.Split(' ').Length).ToList();
if (commandArguments.Any(a => a is "--help" or "-h"))
{
    Console.WriteLine($"fts {command.Name}: {command.Description}\nusage: {command.Usage}");
    return 0;
}

using var cancellation = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; cancellation.Cancel(); };
try
{
    return await command.RunAsync(new CliArguments(commandArguments), cancellation.Token);
}
catch (CliUsageException ex)
{
    Console.Error.WriteLine($"fts {command.Name}: {ex.Message}\nusage: {command.Usage}");
    return 2;
}
