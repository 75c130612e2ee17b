using FineTuneService.Ml.Training;

namespace FineTuneService.Ml.Tests.Training;

public class WarmupCosineScheduleTests
{
    [Fact]
    public void Warmup_rises_linearly_to_the_peak()
    {
        var schedule = new WarmupCosineSchedule(peakLearningRate: 1e-3, warmupSteps: 4, totalSteps: 20, minRatio: 0.1);

        Assert.Equal(0.25e-3, schedule.At(1), 12);
        Assert.Equal(0.5e-3, schedule.At(2), 12);
        Assert.Equal(0.75e-3, schedule.At(3), 12);
        Assert.Equal(1e-3, schedule.At(4), 12);
    }

    [Fact]
    public void Cosine_decays_from_the_peak_to_the_floor_at_the_last_step()
    {
        var schedule = new WarmupCosineSchedule(1e-3, warmupSteps: 4, totalSteps: 25, minRatio: 0.1);

        Assert.Equal(1e-3, schedule.At(5), 12);
        // Halfway through the decay (steps 5..25, progress 0.5 at step 15) cosine gives the mean of peak and floor.
        Assert.Equal(0.55e-3, schedule.At(15), 12);
        Assert.Equal(1e-4, schedule.At(25), 12);
        Assert.Equal(1e-4, schedule.At(40), 12);
        for (var step = 5; step < 25; step++) Assert.True(schedule.At(step + 1) < schedule.At(step));
    }

    [Fact]
    public void Without_warmup_the_first_step_runs_at_the_peak()
    {
        var schedule = new WarmupCosineSchedule(2e-4, warmupSteps: 0, totalSteps: 3, minRatio: 0);

        Assert.Equal(2e-4, schedule.At(1), 12);
        Assert.Equal(1e-4, schedule.At(2), 12);
        Assert.Equal(0, schedule.At(3), 12);
    }

    [Fact]
    public void Steps_are_one_based()
    {
        var schedule = new WarmupCosineSchedule(1e-3, 2, 10, 0.1);
        Assert.Throws<ArgumentOutOfRangeException>(() => schedule.At(0));
    }
}
