namespace FineTuneService.Ml.Training;

/// <summary>
/// Linear warmup from 0 to the peak learning rate, then cosine decay to <c>peak * minRatio</c> at the last step.
/// Pure function of the step, so a resumed run needs only the step to continue the schedule.
/// </summary>
public sealed class WarmupCosineSchedule
{
    public WarmupCosineSchedule(double peakLearningRate, int warmupSteps, int totalSteps, double minRatio)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(peakLearningRate);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(totalSteps);
        ArgumentOutOfRangeException.ThrowIfNegative(warmupSteps);
        if (minRatio is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(minRatio), "must be in [0, 1]");
        PeakLearningRate = peakLearningRate;
        WarmupSteps = Math.Min(warmupSteps, totalSteps);
        TotalSteps = totalSteps;
        MinRatio = minRatio;
    }

    public double PeakLearningRate { get; }
    public int WarmupSteps { get; }
    public int TotalSteps { get; }
    public double MinRatio { get; }

    /// <summary>Learning rate used by optimizer step <paramref name="step"/> (1-based: the first update is step 1).</summary>
    public double At(int step)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(step);
        if (step <= WarmupSteps) return PeakLearningRate * step / WarmupSteps;

        var decaySteps = TotalSteps - WarmupSteps;
        if (decaySteps <= 0) return PeakLearningRate;
        // Step WarmupSteps+1 runs at the peak; the last step runs at the floor.
        var progress = Math.Min(1.0, (double)(step - WarmupSteps - 1) / Math.Max(1, decaySteps - 1));
        var cosine = 0.5 * (1 + Math.Cos(Math.PI * progress));
        return PeakLearningRate * (MinRatio + (1 - MinRatio) * cosine);
    }
}
