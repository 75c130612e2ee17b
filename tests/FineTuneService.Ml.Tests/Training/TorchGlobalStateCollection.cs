using TorchSharp;

namespace FineTuneService.Ml.Tests.Training;

/// <summary>
/// Tests that seed or draw from torch's process-wide default generator (model init, dropout, resume) run alone, so
/// a parallel test cannot advance the generator between a checkpoint and its resume.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TorchGlobalStateCollection : ICollectionFixture<SingleThreadedTorch>
{
    public const string Name = "torch global state";
}

/// <summary>
/// Tiny models gain nothing from intra-op threads, and on a busy machine the thread hand-offs dominate; the collection
/// runs alone, so the process-wide setting is restored before any other test runs.
/// </summary>
public sealed class SingleThreadedTorch : IDisposable
{
    private readonly int previous = torch.get_num_threads();

    public SingleThreadedTorch() => torch.set_num_threads(1);

    public void Dispose() => torch.set_num_threads(previous);
}
