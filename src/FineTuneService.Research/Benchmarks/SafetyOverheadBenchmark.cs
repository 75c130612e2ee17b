using System.Globalization;
using System.Text;
using FineTuneService.Contracts.Safety;
using FineTuneService.Datasets;
using FineTuneService.Ml.Models;
using FineTuneService.Ml.Safety.Strategies;
using FineTuneService.Ml.Training;
using static TorchSharp.torch;

namespace FineTuneService.Research.Benchmarks;

/// <summary>Settings of <see cref="SafetyOverheadBenchmark"/>; the defaults give a ~0.25M-parameter decoder.</summary>
public sealed record SafetyOverheadOptions
{
    public int Layers { get; init; } = 4;
    public int HiddenSize { get; init; } = 64;
    public int Vocabulary { get; init; } = 256;
    public int Steps { get; init; } = 50;
    public int Rounds { get; init; } = 3;
    public int BatchSize { get; init; } = 8;
    public int Examples { get; init; } = 64;
    public long Seed { get; init; } = 17;
}

/// <summary>One measured configuration: per-step wall time over all rounds.</summary>
/// <remarks>CPU time (process user + system) is the robust figure on a shared machine; wall time is reported alongside.</remarks>
public sealed record SafetyOverheadResult(
    string Case, string Strategy, int StepsMeasured, double MeanCpuMs, double MedianCpuMs, double MeanWallMs, double MedianWallMs)
{
    public double CpuOverheadPercent(SafetyOverheadResult plain) => 100 * (MeanCpuMs / plain.MeanCpuMs - 1);
    public double MedianCpuOverheadPercent(SafetyOverheadResult plain) => 100 * (MedianCpuMs / plain.MedianCpuMs - 1);
    public double WallOverheadPercent(SafetyOverheadResult plain) => 100 * (MeanWallMs / plain.MeanWallMs - 1);
}

/// <summary>
/// Per-step cost of the training-time safety strategies against plain SFT on a tiny decoder: every case trains a fresh
/// copy of the same seeded model on the same synthetic data; cases are interleaved round by round so a noisy shared
/// machine affects them alike. Step time is the trainer's own step clock (no evaluation or checkpoints).
/// </summary>
public static class SafetyOverheadBenchmark
{
    public static IReadOnlyList<(string Case, SafetyPlan Strategy)> Cases(SafetyOverheadOptions options)
    {
        var frozen = SafetyStrategies.Registry.For<FrozenLayersParams>().Name;
        var projected = SafetyStrategies.Registry.For<ProjectedGradientsParams>().Name;
        return
        [
            ("plain SFT", SafetyPlan.None),
            ($"{frozen} 1..{options.Layers / 2}", SafetyPlan.Of(new FrozenLayersParams(1, options.Layers / 2))),
            ($"{projected} {ProjectedGradientsVariants.Subspace}", SafetyPlan.Of(new ProjectedGradientsParams())),
            ($"{projected} {ProjectedGradientsVariants.PcGrad}", SafetyPlan.Of(new ProjectedGradientsParams(ProjectedGradientsVariants.PcGrad))),
            ($"{projected} {ProjectedGradientsVariants.Config}", SafetyPlan.Of(new ProjectedGradientsParams(ProjectedGradientsVariants.Config))),
            ($"{projected} {ProjectedGradientsVariants.Subspace}, refresh every step", SafetyPlan.Of(new ProjectedGradientsParams(RefreshEvery: 1))),
        ];
    }

    public static IReadOnlyList<SafetyOverheadResult> Run(SafetyOverheadOptions options, Action<string>? log = null)
    {
        var config = new DecoderConfig
        {
            ModelType = DecoderConfig.Llama,
            VocabSize = options.Vocabulary,
            HiddenSize = options.HiddenSize,
            IntermediateSize = options.HiddenSize * 8 / 3,
            NumHiddenLayers = options.Layers,
            NumAttentionHeads = 4,
            NumKeyValueHeads = 2,
            MaxPositionEmbeddings = 128,
            TieWordEmbeddings = true,
        };
        var task = ReverseTask(options.Examples, options.Vocabulary, seed: 1);
        var data = new EncodedSafetyData(Refusals: ReverseTask(16, options.Vocabulary, seed: 2));
        var trainerOptions = new SftTrainerOptions
        {
            Epochs = 1000,
            MaxSteps = options.Steps,
            BatchSize = options.BatchSize,
            MaxSequenceLength = 64,
            LearningRate = 3e-3,
            WarmupSteps = 0,
            Seed = options.Seed,
            Precision = TrainingPrecision.Float32,
        };
        var cases = Cases(options);
        var wall = cases.Select(_ => new List<double>()).ToArray();
        var cpu = cases.Select(_ => new List<double>()).ToArray();

        // Warm-up: first-call costs (allocator, kernels) must not land on the first case.
        Train(config, options.Seed, trainerOptions with { MaxSteps = 3 }, [], task, new StepClock());
        for (var round = 0; round < options.Rounds; round++)
        {
            for (var c = 0; c < cases.Count; c++)
            {
                var clock = new StepClock();
                var hooks = SafetyTrainingStrategies.Create(cases[c].Strategy, data);
                var result = Train(config, options.Seed, trainerOptions, hooks, task, clock);
                foreach (var hook in hooks.OfType<IDisposable>()) hook.Dispose();
                wall[c].AddRange(clock.WallMilliseconds);
                cpu[c].AddRange(clock.CpuMilliseconds);
                log?.Invoke($"round {round + 1}/{options.Rounds} {cases[c].Case}: {clock.CpuMilliseconds.Average():F1} CPU ms/step, {clock.WallMilliseconds.Average():F1} wall ms/step, final loss {result.TrainLosses[^1]:F3}");
            }
        }
        return cases.Select((c, i) => new SafetyOverheadResult(c.Case, c.Strategy.ToJsonString(), cpu[i].Count, cpu[i].Average(), Median(cpu[i]), wall[i].Average(), Median(wall[i]))).ToArray();
    }

    public static string ToMarkdown(IReadOnlyList<SafetyOverheadResult> results, SafetyOverheadOptions options, string environment)
    {
        var plain = results[0];
        var inv = CultureInfo.InvariantCulture;
        var md = new StringBuilder();
        md.AppendLine("# Safety strategy overhead per training step");
        md.AppendLine();
        md.AppendLine("Generated by `fts bench safety-overhead` (`SafetyOverheadBenchmark`). Do not edit by hand.");
        md.AppendLine();
        md.AppendLine(inv, $"- Model: random Llama-style decoder, {options.Layers} layers, hidden {options.HiddenSize}, vocabulary {options.Vocabulary} (tied embeddings), fp32.");
        md.AppendLine(inv, $"- Data: synthetic reverse-the-prompt chats, {options.Examples} examples, batch {options.BatchSize}; safety set: 16 other examples standing in for refusals.");
        md.AppendLine(inv, $"- {options.Steps} optimizer steps per run, {options.Rounds} interleaved rounds per case (fresh seeded model each run), one torch thread.");
        md.AppendLine("- Per step: process CPU time (user + system) between the trainer's progress callbacks, and wall time from the trainer's step clock. CPU time is the figure to trust on a shared machine.");
        md.AppendLine($"- {SafetyStrategies.Registry.For<ProjectedGradientsParams>().Name} uses its defaults (rank 4, 8 safety samples, safety statistics refreshed every 50 steps and on the first step) unless noted.");
        md.AppendLine(inv, $"- Environment: {environment}");
        md.AppendLine();
        md.AppendLine("| Case | CPU ms/step (mean) | CPU ms/step (median) | overhead, CPU mean | overhead, CPU median | wall ms/step (mean) | overhead, wall mean |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
        foreach (var r in results)
        {
            string Percent(double value) => ReferenceEquals(r, plain) ? "—" : string.Format(inv, "{0:+0.0;-0.0}%", value);
            md.AppendLine(inv, $"| {r.Case} | {r.MeanCpuMs:F1} | {r.MedianCpuMs:F1} | {Percent(r.CpuOverheadPercent(plain))} | {Percent(r.MedianCpuOverheadPercent(plain))} | {r.MeanWallMs:F1} | {Percent(r.WallOverheadPercent(plain))} |");
        }
        md.AppendLine();
        md.AppendLine("Step 1 of each run is left out (it carries set-up work and, for projected gradients, the first estimate of the");
        md.AppendLine("safety statistics); with the default refresh interval of 50 steps a 50-step run re-estimates them once more, at");
        md.AppendLine("step 50, which the mean includes and the median mostly does not. Target: at most +25% for projected gradients at");
        md.AppendLine("the default refresh interval; frozen layers skip the weight gradients of the frozen range, so a step gets cheaper.");
        return md.ToString();
    }

    private static TrainingResult Train(DecoderConfig config, long seed, SftTrainerOptions options, IReadOnlyList<ITrainingStrategy> hooks,
        IReadOnlyList<TokenizedExample> task, StepClock clock)
    {
        using var model = DecoderLM.CreateRandom(config, seed);
        return new SftTrainer(model, options, hooks, clock).Train(task);
    }

    private static List<TokenizedExample> ReverseTask(int count, int vocabulary, int seed)
    {
        // SplitMix-style stream so the data does not depend on System.Random's implementation.
        var state = (ulong)seed * 0x9E3779B97F4A7C15UL;
        int Next(int max)
        {
            var z = state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return (int)((z ^ (z >> 31)) % (ulong)max);
        }
        var examples = new List<TokenizedExample>();
        for (var i = 0; i < count; i++)
        {
            var prompt = Enumerable.Range(0, 8 + Next(16)).Select(_ => 4 + Next(vocabulary - 4)).ToArray();
            int[] ids = [1, .. prompt, 2, .. prompt.Reverse(), 3];
            examples.Add(new TokenizedExample(ids, ids.Select((_, t) => t > prompt.Length + 1).ToArray()));
        }
        return examples;
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>Per-step wall time (the trainer's cumulative step clock) and process CPU time between progress callbacks.</summary>
    private sealed class StepClock : ITrainingObserver
    {
        private TimeSpan _lastWall;
        private TimeSpan _lastCpu = System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime;

        public List<double> WallMilliseconds { get; } = [];
        public List<double> CpuMilliseconds { get; } = [];

        public void OnProgress(TrainingProgress progress)
        {
            var cpu = System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime;
            // The first step also carries the run's setup (model build, optimizer), so only later steps are kept.
            if (progress.Step > 1)
            {
                WallMilliseconds.Add((progress.Elapsed - _lastWall).TotalMilliseconds);
                CpuMilliseconds.Add((cpu - _lastCpu).TotalMilliseconds);
            }
            _lastWall = progress.Elapsed;
            _lastCpu = cpu;
        }
    }
}
