using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using FineTuneService.Datasets;
using FineTuneService.Ml.Generation;
using FineTuneService.Ml.Models;
using FineTuneService.Ml.Runtime;
using FineTuneService.Ml.Training;
using FineTuneService.Research.Bootstrap;
using TorchSharp;
using static TorchSharp.torch;

namespace FineTuneService.Research.Benchmarks;

/// <summary>
/// <c>fts bench engine</c>: the fp32 and bf16 matmul peaks (best of several repeats of at least a second each, with
/// their spread), SFT training throughput and MFU of two decoder sizes at a couple of batch sizes (median and best of
/// the steps timed over at least <see cref="Settings.TrainSeconds"/>), the same decoder in PyTorch eager when Debian's
/// torch is installed, peak memory, generation tokens/s and the live tensor count over 1,000 steps. Writes markdown
/// and json. Figures are measured, never asserted.
/// </summary>
public static class EngineBenchmark
{
    /// <param name="OutputDirectory">Where engine[-quick][-threadsN].md/json go.</param>
    /// <param name="Threads">torch intra-op threads (0: libtorch's default).</param>
    /// <param name="Quick">Small sizes and short timings: checks the harness, measures nothing worth keeping.</param>
    /// <param name="MatmulRepeats">Timed repeats per matmul size.</param>
    /// <param name="MatmulSeconds">Minimum duration of one matmul repeat.</param>
    /// <param name="TrainSeconds">Each training case times steps (after one warm-up step) for at least this long.</param>
    /// <param name="TrainSteps">… and at least this many steps.</param>
    /// <param name="Python">The interpreter of the PyTorch anchor; null skips the anchor.</param>
    /// <param name="BootstrapOnly">Only the bootstrap model's training cases (no 100M model, no generation, no leak check).</param>
    /// <param name="BootstrapBatches">The bootstrap model's batch sizes; null: half its build batch and the batch itself.</param>
    public sealed record Settings(
        string OutputDirectory, int Threads, bool Quick,
        int MatmulRepeats = 5, double MatmulSeconds = 1.0, double TrainSeconds = 10, int TrainSteps = 3,
        string? Python = TorchEagerAnchor.DebianPython, bool BootstrapOnly = false, IReadOnlyList<int>? BootstrapBatches = null);

    public static void Run(Settings settings)
    {
        if (settings.Quick) settings = settings with { MatmulRepeats = 2, MatmulSeconds = 0.2, TrainSeconds = 1, TrainSteps = 2 };
        if (settings.Threads > 0) torch.set_num_threads(settings.Threads);
        Directory.CreateDirectory(settings.OutputDirectory);
        var log = (string line) => Console.WriteLine($"[{TimeProvider.System.GetUtcNow():HH:mm:ss}] {line}");

        var machine = Machine();
        log($"machine: {machine["cpu"]}, {machine["logical_cores"]} cores ({machine["cpu_flags"]}), torch threads {torch.get_num_threads()}, load {machine["load_average"]}");

        var float32 = MeasurePeak(ScalarType.Float32, settings.Quick ? [256, 512] : [512, 1024, 2048], settings, log);
        var bfloat16 = MeasurePeak(ScalarType.BFloat16, settings.Quick ? [256] : [512, 1024], settings, log);
        var precision = PrecisionFigures.From(float32, bfloat16);
        log($"bf16 / fp32 matmul: {precision.Speedup:F2}x at {precision.Size}² — CPU mixed precision {(precision.UseBFloat16 ? "pays" : "does not pay")} here");

        var anchor = TorchEagerAnchor.Probe(settings.Python);
        log(anchor.SkippedBecause is null ? $"PyTorch anchor: torch {anchor.TorchVersion}" : $"PyTorch anchor skipped: {anchor.SkippedBecause}");
        var training = new List<TrainingFigures>();
        foreach (var (name, config, seq, batches, anchored) in TrainingCases(settings).Take(settings.BootstrapOnly ? 1 : int.MaxValue))
        {
            foreach (var batch in batches)
            {
                var figures = MeasureTraining(name, config, seq, batch, settings, float32, log);
                if (anchored && anchor.SkippedBecause is null)
                {
                    var eager = anchor.Run(config, batch, seq, settings.Threads > 0 ? settings.Threads : torch.get_num_threads(), settings.TrainSeconds, settings.TrainSteps, log);
                    figures = figures with { PyTorchEager = eager, EngineOverPyTorch = eager is { TokensPerSecond: > 0 } ? Math.Round(figures.TokensPerSecond / eager.TokensPerSecond, 2) : null };
                }
                training.Add(figures);
            }
        }
        var generation = new List<GenerationFigures>();
        foreach (var (name, config, _, _, _) in TrainingCases(settings).Take(settings.BootstrapOnly ? 0 : int.MaxValue))
            foreach (var batch in new[] { 1, 8 })
                generation.Add(MeasureGeneration(name, config, batch, newTokens: settings.Quick || config.HiddenSize > 512 ? 16 : 32, log));
        var leak = settings.BootstrapOnly ? null : LiveTensors(steps: settings.Quick ? 200 : 1000, log);

        var report = new EngineReport(TimeProvider.System.GetUtcNow(), machine, torch.get_num_threads(), settings, float32, bfloat16, precision, anchor,
            training, generation, leak);
        var stamp = (settings.Quick ? "engine-quick" : "engine") + (settings.Threads > 0 ? $"-threads{settings.Threads}" : "");
        File.WriteAllText(Path.Combine(settings.OutputDirectory, $"{stamp}.json"), report.ToJson().ToJsonString(Json) + "\n");
        File.WriteAllText(Path.Combine(settings.OutputDirectory, $"{stamp}.md"), EngineBenchmarkMarkdown.Render(report));
        log($"wrote {Path.Combine(settings.OutputDirectory, stamp)}.md/.json");
    }

    internal static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>Everything one run measured.</summary>
    public sealed record EngineReport(
        DateTimeOffset CreatedAt, JsonObject Machine, int TorchThreads, Settings Settings, PeakFigures Float32, PeakFigures BFloat16,
        PrecisionFigures Precision, TorchEagerAnchor Anchor, IReadOnlyList<TrainingFigures> Training,
        IReadOnlyList<GenerationFigures> Generation, LiveTensorFigures? LiveTensors)
    {
        public JsonObject ToJson() => new()
        {
            ["created_at"] = CreatedAt.ToString("O"),
            ["machine"] = Machine.DeepClone(),
            ["torch_threads"] = TorchThreads,
            ["settings"] = JsonSerializer.SerializeToNode(Settings, Json),
            ["matmul_peak"] = JsonSerializer.SerializeToNode(Float32, Json),
            ["bf16_matmul_peak"] = JsonSerializer.SerializeToNode(BFloat16, Json),
            ["cpu_mixed_precision"] = JsonSerializer.SerializeToNode(Precision, Json),
            ["pytorch_anchor"] = JsonSerializer.SerializeToNode(new { Anchor.TorchVersion, Anchor.Blas, Anchor.SkippedBecause }, Json),
            ["training"] = JsonSerializer.SerializeToNode(Training, Json),
            ["generation"] = JsonSerializer.SerializeToNode(Generation, Json),
            ["live_tensors"] = JsonSerializer.SerializeToNode(LiveTensors, Json),
        };
    }

    // ---------------------------------------------------------------- matmul peaks

    /// <summary>Square matmuls of one dtype at several sizes; <see cref="GflopsPerSecond"/> is the best repeat of the best size.</summary>
    public sealed record PeakFigures(string DType, double GflopsPerSecond, double GflopsPerCpuSecond, int BestSize, double SpreadAtBestSize,
        IReadOnlyList<MatmulPoint> Points);

    /// <param name="Spread">(best − worst) / best over the repeats.</param>
    public sealed record MatmulPoint(int Size, double Best, double Median, double Worst, double Spread, double BestPerCpuSecond, int Repeats, double SecondsPerRepeat);

    private static PeakFigures MeasurePeak(ScalarType dtype, int[] sizes, Settings settings, Action<string> log)
    {
        var points = new List<MatmulPoint>();
        foreach (var n in sizes)
        {
            var rate = MatmulThroughput.Measure(dtype, n, settings.MatmulRepeats, TimeSpan.FromSeconds(settings.MatmulSeconds));
            var point = new MatmulPoint(n, Math.Round(rate.Best, 1), Math.Round(rate.Median, 1), Math.Round(rate.Worst, 1), Math.Round(rate.Spread, 3),
                Math.Round(rate.BestPerCpuSecond, 1), rate.Repeats.Count, Math.Round(rate.Repeats.Average(r => r.Seconds), 2));
            points.Add(point);
            log($"{dtype} matmul {n}²: best {point.Best:F1}, median {point.Median:F1}, worst {point.Worst:F1} GFLOP/s " +
                $"(spread {point.Spread:P0}, {point.Repeats} × {point.SecondsPerRepeat:F1} s), {point.BestPerCpuSecond:F1} GFLOP per CPU-second");
        }
        var best = points.MaxBy(p => p.Best)!;
        return new PeakFigures(dtype.ToString(), best.Best, points.Max(p => p.BestPerCpuSecond), best.Size, best.Spread, points);
    }

    /// <summary>bf16 against fp32 at the largest size both measured, and the worker's run-time decision from those rates.</summary>
    public sealed record PrecisionFigures(int Size, double Float32Gflops, double BFloat16Gflops, double Speedup, double MinimumSpeedup, bool UseBFloat16)
    {
        public static PrecisionFigures From(PeakFigures float32, PeakFigures bfloat16)
        {
            var size = bfloat16.Points.Select(p => p.Size).Intersect(float32.Points.Select(p => p.Size)).DefaultIfEmpty(bfloat16.Points[0].Size).Max();
            var f = float32.Points.FirstOrDefault(p => p.Size == size)?.Best ?? float32.GflopsPerSecond;
            var b = bfloat16.Points.First(p => p.Size == size).Best;
            return new PrecisionFigures(size, f, b, f > 0 ? Math.Round(b / f, 3) : 0, CpuMixedPrecision.MinimumSpeedup, CpuMixedPrecision.Worthwhile(f, b));
        }
    }

    // ---------------------------------------------------------------- training

    /// <param name="Mfu">6·N·tokens/s over the fp32 peak, from the median step.</param>
    /// <param name="BestMfu">The same from the fastest step.</param>
    /// <param name="StepSpread">(slowest − fastest) / median step time.</param>
    public sealed record TrainingFigures(
        string Model, long Parameters, long FlopParameters, int SequenceLength, int BatchSize, int MeasuredSteps,
        double SecondsPerStep, double BestSecondsPerStep, double StepSpread, double TokensPerSecond, double ModelTflopsPerSecond,
        double Mfu, double BestMfu, double MfuWithAttention, double CpuSecondsPerStep, double TokensPerCpuSecond, double CpuMfu,
        double PeakRssMiB, double FirstLoss, double LastLoss)
    {
        [JsonPropertyName("pytorch_eager")] public TorchEagerAnchor.Figures? PyTorchEager { get; init; }

        /// <summary>Engine tokens/s over PyTorch eager's, both from their median step, in the same run.</summary>
        [JsonPropertyName("engine_over_pytorch")] public double? EngineOverPyTorch { get; init; }

        /// <summary>Every timed step, in order, with what the process did in it.</summary>
        public IReadOnlyList<StepSample> Steps { get; init; } = [];

        /// <summary>(most − least) / median process CPU seconds per step: wall spread with a low CPU spread is other processes' doing.</summary>
        public double MedianCpuSpread { get; init; }
    }

    /// <param name="MinorFaults">Page faults without I/O in the step: the allocator mapping fresh memory.</param>
    /// <param name="Collections">.NET garbage collections (all generations) in the step.</param>
    /// <param name="InvoluntarySwitches">Times the main (training) thread was preempted in the step.</param>
    public sealed record StepSample(double Seconds, double CpuSeconds, long MinorFaults, long MajorFaults, int Collections, long InvoluntarySwitches);

    /// <summary>Process counters read at a step boundary (Linux /proc; zeros elsewhere).</summary>
    private readonly record struct StepCounters(long MinorFaults, long MajorFaults, int Collections, long InvoluntarySwitches)
    {
        public static StepCounters Now()
        {
            long minor = 0, major = 0, involuntary = 0;
            if (File.Exists("/proc/self/stat"))
            {
                // Fields after the parenthesised command name: state is field 3, minflt 10, majflt 12.
                var stat = File.ReadAllText("/proc/self/stat");
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                minor = long.Parse(fields[7], CultureInfo.InvariantCulture);
                major = long.Parse(fields[9], CultureInfo.InvariantCulture);
                var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("nonvoluntary_ctxt_switches:", StringComparison.Ordinal));
                if (line is not null) involuntary = long.Parse(line.Split(':')[1].Trim(), CultureInfo.InvariantCulture);
            }
            return new StepCounters(minor, major, GC.CollectionCount(0) + GC.CollectionCount(1) + GC.CollectionCount(2), involuntary);
        }
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? 0 : sorted[sorted.Length / 2];
    }

    private static double Spread(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 || sorted[sorted.Length / 2] <= 0 ? 0 : Math.Round((sorted[^1] - sorted[0]) / sorted[sorted.Length / 2], 3);
    }

    /// <summary>The bootstrap model's shape (with the PyTorch anchor) and a 100M-parameter Llama.</summary>
    private static IEnumerable<(string Name, DecoderConfig Config, int SequenceLength, IReadOnlyList<int> Batches, bool Anchored)> TrainingCases(Settings settings)
    {
        var quick = settings.Quick;
        var tiny = BootstrapModelOptions.SafetuneTiny;
        // Tied embeddings, as the bootstrap build makes it (5.8M parameters).
        yield return (tiny.Name, Llama(tiny.VocabularySize, tiny.HiddenSize, tiny.IntermediateSize, tiny.Layers, tiny.AttentionHeads, tiny.KeyValueHeads, tied: true),
            quick ? 64 : tiny.MaxSequenceLength, settings.BootstrapBatches ?? (quick ? [4] : [tiny.BatchSize / 2, tiny.BatchSize]), true);
        if (!quick)
            yield return ("llama-100M", Llama(vocabulary: 16384, hidden: 768, intermediate: 2048, layers: 12, heads: 12, kvHeads: 12, tied: true), 256, [1, 2], false);
    }

    private static DecoderConfig Llama(int vocabulary, int hidden, int intermediate, int layers, int heads, int kvHeads, bool tied) => new()
    {
        Architectures = ["LlamaForCausalLM"],
        ModelType = DecoderConfig.Llama,
        VocabSize = vocabulary,
        HiddenSize = hidden,
        IntermediateSize = intermediate,
        NumHiddenLayers = layers,
        NumAttentionHeads = heads,
        NumKeyValueHeads = kvHeads,
        MaxPositionEmbeddings = 2048,
        TieWordEmbeddings = tied,
        BosTokenId = 1,
        EosTokenIdNode = JsonValue.Create(2),
        TorchDtype = "float32",
    };

    /// <summary>
    /// Full fine-tuning through <see cref="SftTrainer"/> on random full-length rows: one untimed warm-up step, then
    /// steps until both the minimum count and the minimum duration are reached (the trainer is stopped through its
    /// cancellation token). Step times are the gaps between consecutive progress reports.
    /// </summary>
    private static TrainingFigures MeasureTraining(string name, DecoderConfig config, int sequenceLength, int batch, Settings settings,
        PeakFigures peak, Action<string> log)
    {
        const int maxSteps = 200;
        ResetPeakRss();
        using var model = DecoderLM.CreateRandom(config, seed: 1);
        var parameters = model.parameters().Sum(p => p.numel());
        // Embedding lookups are not FLOPs; a tied matrix still does the output projection, so it counts once.
        var flopParameters = parameters - (config.TieWordEmbeddings ? 0 : (long)config.VocabSize * config.HiddenSize);
        var examples = RandomExamples(batch * (maxSteps + 1), sequenceLength, config.VocabSize, seed: 5);
        var stamps = new List<(TimeSpan At, double Cpu, long Tokens, double Loss, StepCounters Counters)>();
        using var enough = new CancellationTokenSource();
        var clock = Stopwatch.StartNew();
        var observer = new StepObserver(p =>
        {
            stamps.Add((clock.Elapsed, CpuSeconds(), p.TokensSeen, p.TrainLoss, StepCounters.Now()));
            var timed = stamps.Count - 1;
            if (timed >= maxSteps || (timed >= settings.TrainSteps && (stamps[^1].At - stamps[0].At).TotalSeconds >= settings.TrainSeconds))
                enough.Cancel();
        });
        var options = new SftTrainerOptions
        {
            Epochs = 1, MaxSteps = maxSteps + 1, BatchSize = batch, MaxSequenceLength = sequenceLength, LearningRate = 3e-4, WarmupSteps = 1,
            Precision = TrainingPrecision.Float32, Seed = 1,
        };
        new SftTrainer(model, options, observer: observer).Train(examples, cancellationToken: enough.Token);

        var series = stamps.Zip(stamps.Skip(1), (a, b) => new StepSample(Math.Round((b.At - a.At).TotalSeconds, 4), Math.Round(b.Cpu - a.Cpu, 4),
            b.Counters.MinorFaults - a.Counters.MinorFaults, b.Counters.MajorFaults - a.Counters.MajorFaults,
            b.Counters.Collections - a.Counters.Collections, b.Counters.InvoluntarySwitches - a.Counters.InvoluntarySwitches)).ToList();
        var steps = series.Select(s => s.Seconds).Order().ToArray();
        var measured = steps.Length;
        var median = steps[measured / 2];
        var tokensPerStep = (double)(stamps[^1].Tokens - stamps[0].Tokens) / measured;
        var cpuSeconds = stamps[^1].Cpu - stamps[0].Cpu;
        var tokensPerSecond = tokensPerStep / median;
        var flopsPerToken = 6.0 * flopParameters;
        var attentionFlopsPerToken = 12.0 * config.NumHiddenLayers * config.HiddenSize * sequenceLength;
        var peakFlops = peak.GflopsPerSecond * 1e9;
        var figures = new TrainingFigures(name, parameters, flopParameters, sequenceLength, batch, measured,
            Math.Round(median, 3), Math.Round(steps[0], 3), Spread(steps), Math.Round(tokensPerSecond, 1),
            Math.Round(flopsPerToken * tokensPerSecond / 1e12, 4),
            Math.Round(flopsPerToken * tokensPerSecond / peakFlops, 4),
            Math.Round(flopsPerToken * tokensPerStep / steps[0] / peakFlops, 4),
            Math.Round((flopsPerToken + attentionFlopsPerToken) * tokensPerSecond / peakFlops, 4),
            Math.Round(cpuSeconds / measured, 3), Math.Round(tokensPerStep * measured / cpuSeconds, 1),
            Math.Round(flopsPerToken * tokensPerStep * measured / cpuSeconds / (peak.GflopsPerCpuSecond * 1e9), 4),
            Math.Round(PeakRssMiB(), 1), Math.Round(stamps[0].Loss, 4), Math.Round(stamps[^1].Loss, 4))
        {
            Steps = series,
            MedianCpuSpread = Spread(series.Select(s => s.CpuSeconds)),
        };
        log($"train {name} ({parameters / 1e6:F1}M) B={batch} T={sequenceLength}: {figures.TokensPerSecond:F0} tok/s (median of {measured} steps, " +
            $"spread {figures.StepSpread:P0}), MFU {figures.Mfu:P1} (best step {figures.BestMfu:P1}, with attention {figures.MfuWithAttention:P1}), " +
            $"CPU-time MFU {figures.CpuMfu:P1}, peak RSS {figures.PeakRssMiB:F0} MiB; per step: CPU spread {figures.MedianCpuSpread:P0}, " +
            $"minor faults {Median(series.Select(s => (double)s.MinorFaults)):F0}, GCs {series.Sum(s => s.Collections)}, " +
            $"involuntary switches {Median(series.Select(s => (double)s.InvoluntarySwitches)):F0} (medians)");
        return figures;
    }

    private static List<TokenizedExample> RandomExamples(int count, int length, int vocabulary, int seed)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(_ => new TokenizedExample(
            [.. Enumerable.Range(0, length).Select(_ => random.Next(3, vocabulary))],
            [.. Enumerable.Range(0, length).Select(t => t > 0)]))];
    }

    // ---------------------------------------------------------------- generation

    public sealed record GenerationFigures(string Model, int BatchSize, int PromptLength, int NewTokens, double Seconds, double TokensPerSecond);

    private static GenerationFigures MeasureGeneration(string name, DecoderConfig config, int batch, int newTokens, Action<string> log)
    {
        using var model = DecoderLM.CreateRandom(config, seed: 1);
        var random = new Random(3);
        const int promptLength = 32;
        var prompts = Enumerable.Range(0, batch)
            .Select(_ => (IReadOnlyList<int>)[.. Enumerable.Range(0, promptLength).Select(_ => random.Next(3, config.VocabSize))])
            .ToList();
        var generator = new TextGenerator(model);
        var options = new GenerationOptions { MaxNewTokens = newTokens, StopTokenIds = [], Temperature = 0 };
        generator.Generate(prompts, options with { MaxNewTokens = 2 });
        var clock = Stopwatch.StartNew();
        var output = generator.Generate(prompts, options);
        var seconds = clock.Elapsed.TotalSeconds;
        var tokens = output.Sum(s => s.TokenIds.Length);
        var figures = new GenerationFigures(name, batch, promptLength, tokens, Math.Round(seconds, 3), Math.Round(tokens / seconds, 1));
        log($"generate {name} B={batch}: {figures.TokensPerSecond:F1} tok/s ({tokens} tokens, KV cache, greedy)");
        return figures;
    }

    // ---------------------------------------------------------------- live tensors

    /// <summary>The live tensor count after one step; a record, since System.Text.Json writes a value tuple as <c>{}</c>.</summary>
    public sealed record LiveTensorSample(int Step, long Live);

    public sealed record LiveTensorFigures(string Model, int Steps, IReadOnlyList<LiveTensorSample> Samples)
    {
        public long Growth => Samples[^1].Live - Samples[0].Live;
    }

    private static LiveTensorFigures LiveTensors(int steps, Action<string> log)
    {
        var config = Llama(vocabulary: 256, hidden: 32, intermediate: 64, layers: 2, heads: 4, kvHeads: 2, tied: false);
        using var model = DecoderLM.CreateRandom(config, seed: 1);
        var threads = torch.get_num_threads();
        torch.set_num_threads(1); // a tiny model gains nothing from intra-op threads
        var samples = new List<LiveTensorSample>();
        var observer = new StepObserver(p =>
        {
            if (p.Step == 1 || p.Step % (steps / 10) == 0) samples.Add(new LiveTensorSample(p.Step, DisposeScopeManager.Statistics.ThreadTotalLiveCount));
        });
        var options = new SftTrainerOptions { Epochs = steps, MaxSteps = steps, BatchSize = 4, MaxSequenceLength = 32, EvalEverySteps = 100 };
        new SftTrainer(model, options, observer: observer)
            .Train(RandomExamples(8, 32, config.VocabSize, seed: 9), RandomExamples(4, 32, config.VocabSize, seed: 10));
        torch.set_num_threads(threads);
        var figures = new LiveTensorFigures("tiny-llama-0.05M", steps, samples);
        log($"live tensors over {steps} steps: {string.Join(", ", samples.Select(s => $"{s.Step}:{s.Live}"))}");
        return figures;
    }

    // ---------------------------------------------------------------- machine and memory

    private static JsonObject Machine()
    {
        string Read(string path) => File.Exists(path) ? File.ReadAllText(path) : "";
        var cpuinfo = Read("/proc/cpuinfo").Split('\n');
        string Field(string key) => cpuinfo.FirstOrDefault(l => l.StartsWith(key, StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown";
        var memKb = Read("/proc/meminfo").Split('\n').FirstOrDefault(l => l.StartsWith("MemTotal", StringComparison.Ordinal))?
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1];
        return new JsonObject
        {
            ["cpu"] = Field("model name"),
            ["logical_cores"] = Environment.ProcessorCount,
            ["cpu_flags"] = string.Join(" ", CpuMixedPrecision.CpuFlags()),
            ["memory_gib"] = memKb is null ? null : Math.Round(long.Parse(memKb, CultureInfo.InvariantCulture) / 1048576.0, 1),
            ["os"] = RuntimeInformation.OSDescription,
            ["dotnet"] = RuntimeInformation.FrameworkDescription,
            ["torchsharp"] = typeof(torch).Assembly.GetName().Version?.ToString(),
            ["malloc_tuning"] = NativeHeap.Applied ? "NativeHeap: no mmap, deferred trim, one arena" : "glibc defaults or the operator's MALLOC_* settings",
            ["load_average"] = Read("/proc/loadavg").Split(' ').Take(3).Aggregate((a, b) => $"{a} {b}"),
        };
    }

    private static double CpuSeconds()
    {
        using var process = Process.GetCurrentProcess();
        return process.TotalProcessorTime.TotalSeconds;
    }

    /// <summary>Resets the kernel's peak-RSS mark (Linux clear_refs "5") so each case reports its own peak.</summary>
    private static void ResetPeakRss()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        try { File.WriteAllText("/proc/self/clear_refs", "5"); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private static double PeakRssMiB()
    {
        var line = File.ReadAllLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        return line is null ? Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0
            : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024.0;
    }

    private sealed class StepObserver(Action<TrainingProgress> onProgress) : ITrainingObserver
    {
        public void OnProgress(TrainingProgress progress) => onProgress(progress);
    }
}
