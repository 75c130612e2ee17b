namespace FineTuneService.Ml.Tests.Training;

/// <summary>
/// Tests that seed or draw from torch's process-wide default generator (model init, dropout, resume) run alone, so
/// a parallel test cannot advance the generator between a checkpoint and its resume.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TorchGlobalStateCollection
{
    public const string Name = "torch global state";
}
