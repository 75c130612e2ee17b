using System.Text.Json.Nodes;
using FineTuneService.Service.Tests.Infrastructure;

namespace FineTuneService.Service.Tests.Deployment;

/// <summary>
/// What each host ships, read from the dependency manifest its build writes (the one publish copies): the worker
/// carries no research code (bootstrap, benchmarks and classifier training live in FineTuneService.Research, for
/// fts), and the API neither the engine nor libtorch.
/// </summary>
public sealed class HostDependencyTests
{
    /// <summary>The host's build output of this test run's configuration (Release or Debug).</summary>
    private static string BuildOf(string host)
    {
        var tests = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var directory = Path.Combine(PostgresServer.RepositoryRoot(), "src", host, "bin", tests.Parent!.Name, tests.Name);
        Assert.True(File.Exists(Path.Combine(directory, $"{host}.deps.json")), $"Build {host} first: {directory}");
        return directory;
    }

    private static List<string> Libraries(string host) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(BuildOf(host), $"{host}.deps.json")))!["libraries"]!.AsObject()
            .Select(l => l.Key[..l.Key.IndexOf('/')]).ToList();

    [Fact]
    public void The_worker_ships_the_engine_but_no_research_assembly()
    {
        var libraries = Libraries("FineTuneService.Worker");
        Assert.Contains("FineTuneService.Ml", libraries);
        Assert.DoesNotContain("FineTuneService.Research", libraries);
        Assert.False(File.Exists(Path.Combine(BuildOf("FineTuneService.Worker"), "FineTuneService.Research.dll")));
    }

    [Fact]
    public void The_api_ships_neither_the_engine_nor_torchsharp()
    {
        var libraries = Libraries("FineTuneService.Api");
        Assert.Contains("FineTuneService.Contracts", libraries);
        Assert.DoesNotContain(libraries, l => l is "FineTuneService.Ml" or "FineTuneService.Research"
            || l.StartsWith("TorchSharp", StringComparison.Ordinal) || l.StartsWith("libtorch", StringComparison.Ordinal));
    }
}
