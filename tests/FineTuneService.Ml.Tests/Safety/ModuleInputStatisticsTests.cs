using FineTuneService.Ml.Safety.Strategies;
using static FineTuneService.Ml.Tests.Safety.SafetyTestTensors;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Tests.Safety;

public sealed class ModuleInputStatisticsTests
{
    [Fact]
    public void Records_the_per_feature_mean_square_of_each_watched_module_input_over_all_tokens()
    {
        using var scope = NewDisposeScope();
        var g = Seeded(61);
        using var first = nn.Linear(4, 3);
        using var second = nn.Linear(3, 2);
        using var model = nn.Sequential(("first", first), ("second", second));
        var x1 = Randn(g, 2, 5, 4);
        var x2 = Randn(g, 1, 3, 4);

        var recorder = new ModuleInputStatistics(model, name => name is "first" or "second");
        using (no_grad())
        {
            model.call(x1);
            model.call(x2);
        }
        var stats = recorder.MeanSquares();
        recorder.Dispose();
        using (no_grad()) model.call(x1);
        Assert.Empty(recorder.MeanSquares()); // the hooks went with Dispose: the forward after it recorded nothing

        var inputs = cat([x1.reshape(-1, 4), x2.reshape(-1, 4)], 0);
        Assert.True(stats["first"].allclose(inputs.pow(2).mean([0]), atol: 1e-6));
        using (no_grad()) Assert.True(stats["second"].allclose(first.call(inputs).pow(2).mean([0]), atol: 1e-5));
        Assert.Equal(new long[] { 4 }, stats["first"].shape);
    }
}
