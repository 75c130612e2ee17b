using FineTuneService.Ml.Training;
using TorchSharp;

namespace FineTuneService.Ml.Tests.Training;

[Collection(TorchGlobalStateCollection.Name)]
public class TrainerLeakTests
{
    [Fact]
    public void Live_tensor_count_does_not_grow_over_hundreds_of_steps()
    {
        using var model = TrainerTestData.Decoder();
        var live = new Dictionary<int, long>();
        // The observer runs on the training thread, where DisposeScopeManager keeps its (thread-static) statistics.
        var observer = new DelegateObserver(progress: p => live[p.Step] = DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        var options = TrainerTestData.Options() with { MaxSteps = 300, Epochs = 1000, BatchSize = 2, EvalEverySteps = 50 };

        var result = new SftTrainer(model, options, observer: observer).Train(TrainerTestData.ReverseTask(8), TrainerTestData.ReverseTask(2, seed: 5));

        Assert.Equal(300, result.StepsDone);
        Assert.True(live[300] <= live[20], $"live tensors grew from {live[20]} at step 20 to {live[300]} at step 300");
    }
}
