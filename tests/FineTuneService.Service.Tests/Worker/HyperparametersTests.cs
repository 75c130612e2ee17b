using System.Text.Json.Nodes;
using FineTuneService.Worker.Jobs;

namespace FineTuneService.Service.Tests.Worker;

public sealed class HyperparametersTests
{
    private static JsonObject Auto() => new() { ["n_epochs"] = "auto", ["batch_size"] = "auto", ["learning_rate_multiplier"] = "auto" };

    [Theory]
    [InlineData(10, 10, 1, 0.05)]      // small sets get more epochs, so about 100 examples are seen
    [InlineData(50, 3, 1, 0.05)]
    [InlineData(5_000, 3, 8, 0.1)]     // batch of about 0.2% of the data, rounded down to a power of two
    [InlineData(20_000, 1, 32, 0.2)]   // large sets: fewer epochs, bigger batches, larger multiplier
    public void Auto_values_follow_the_dataset_size(int examples, int epochs, int batchSize, double multiplier)
    {
        var resolved = ResolvedHyperparameters.Resolve(Auto(), examples);
        Assert.Equal(new ResolvedHyperparameters(epochs, batchSize, multiplier), resolved);
    }

    [Fact]
    public void Explicit_values_are_kept_and_missing_keys_mean_auto()
    {
        var resolved = ResolvedHyperparameters.Resolve(new JsonObject { ["n_epochs"] = 2, ["learning_rate_multiplier"] = 0.5 }, 100);
        Assert.Equal(new ResolvedHyperparameters(2, 1, 0.5), resolved);
        Assert.Equal("{\"n_epochs\":2,\"batch_size\":1,\"learning_rate_multiplier\":0.5}", resolved.ToJson().ToJsonString());
    }

    [Fact]
    public void Non_numeric_values_are_refused_with_the_parameter_name()
    {
        var error = Assert.Throws<JobFailureException>(() =>
            ResolvedHyperparameters.Resolve(new JsonObject { ["batch_size"] = "big" }, 100));
        Assert.Equal("invalid_hyperparameters", error.Code);
        Assert.Equal("hyperparameters.batch_size", error.Param);
    }
}
