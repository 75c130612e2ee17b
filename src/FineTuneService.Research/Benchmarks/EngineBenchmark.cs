using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using FineTuneService.Datasets;
using FineTuneService.Ml.Generation;
using FineTuneService.Ml.Models;
using FineTuneService.Ml.Training;
using FineTuneService.Research.Bootstrap;
using TorchSharp;
using static TorchSharp.torch;

namespace FineTuneService.Research.Benchmarks;

/// <summary>
/// <c>fts bench engine</c>: fp32 matmul peak, SFT training throughput and MFU of two decoder sizes at a couple of
/// batch sizes, peak memory, generation tokens/s and the live tensor count over 1,000 steps. Writes markdown + json.
/// Figures are measured, never asserted.
/// </summary>
public static class EngineBenchmark
{
    public sealed record Settings(string OutputDirectory, int Threads, int MeasuredSteps, bool Quick);

    public static void Run(Settings settings)
    {
        if (settings.Threads > 0) torch.set_num_threads(settings.Threads);
        Directory.CreateDirectory(settings.OutputDirectory);
        var log = (string line) => Console.WriteLine($"[{DateTime.UtcNow:HH:mm:ss}] {line}");

        var machine = Machine();
        log($"machine: {machine["cpu"]}, {machine["logical_cores"]} cores, torch threads {torch.get_num_threads()}, load {machine["load_average"]}");

        var peak = MeasureMatmulPeak(settings.Quick ? [512, 1024] : [512, 1024, 2048], log);
        var training = new List<TrainingFigures>();
        foreach (var (name, config, seq, batches) in TrainingCases(settings.Quick))
            foreach (var batch in batches)
                training.Add(MeasureTraining(name, config, seq, batch, settings.MeasuredSteps, peak, log));
        var generation = new List<GenerationFigures>();
        foreach (var (name, config, _, _) in TrainingCases(settings.Quick))
            foreach (var batch in new[] { 1, 8 })
                generation.Add(MeasureGeneration(name, config, batch, newTokens: settings.Quick || config.HiddenSize > 512 ? 16 : 32, log));
        var leak = LiveTensors(steps: settings.Quick ? 200 : 1000, log);

        var report = new JsonObject
        {
            ["created_at"] = DateTimeOffset.UtcNow.ToString("O"),
            ["machine"] = machine,
            ["torch_threads"] = torch.get_num_threads(),
            ["matmul_peak"] = JsonSerializer.SerializeToNode(peak, Json),
            ["training"] = JsonSerializer.SerializeToNode(training, Json),
            ["generation"] = JsonSerializer.SerializeToNode(generation, Json),
            ["live_tensors"] = JsonSerializer.SerializeToNode(leak, Json),
        };
        var stamp = (settings.Quick ? "engine-quick" : "engine") + (settings.Threads > 0 ? $"-threads{settings.Threads}" : "");
        File.WriteAllText(Path.Combine(settings.OutputDirectory, $"{stamp}.json"), report.ToJsonString(Json) + "\n");
        File.WriteAllText(Path.Combine(settings.OutputDirectory, $"{stamp}.md"), Markdown(machine, peak, training, generation, leak));
        log($"wrote {Path.Combine(settings.OutputDirectory, stamp)}.md/.json");
    }

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    // ---------------------------------------------------------------- matmul peak

    /// <param name="GflopsPerSecond">Best wall-clock rate of any size.</param>
    /// <param name="GflopsPerCpuSecond">Best rate per second of process CPU time (user + system, all threads).</param>
    public sealed record MatmulFigures(double GflopsPerSecond, double GflopsPerCpuSecond, IReadOnlyList<MatmulPoint> Points);
    public sealed record MatmulPoint(int Size, double GflopsPerSecond, double GflopsPerCpuSecond);

    /// <summary>Best of several square fp32 matmuls per size: the CPU's practical peak in this process, now.</summary>
    private static MatmulFigures MeasureMatmulPeak(int[] sizes, Action<string> log)
    {
        var points = new List<MatmulPoint>();
        foreach (var n in sizes)
        {
            using var scope = NewDisposeScope();
            var a = randn(n, n);
            var b = randn(n, n);
            mm(a, b).Dispose();
            var best = double.MaxValue;
            const int repeats = 4;
            var cpuStart = CpuSeconds();
            for (var i = 0; i < repeats; i++)
            {
                var clock = Stopwatch.StartNew();
                mm(a, b).Dispose();
                best = Math.Min(best, clock.Elapsed.TotalSeconds);
            }
            var cpu = (CpuSeconds() - cpuStart) / repeats;
            var flops = 2.0 * n * n * n;
            var point = new MatmulPoint(n, Math.Round(flops / best / 1e9, 1), Math.Round(flops / cpu / 1e9, 1));
            points.Add(point);
            log($"matmul {n}x{n}: {point.GflopsPerSecond:F1} GFLOP/s wall, {point.GflopsPerCpuSecond:F1} GFLOP per CPU-second");
        }
        return new MatmulFigures(points.Max(p => p.GflopsPerSecond), points.Max(p => p.GflopsPerCpuSecond), points);
    }

    // ---------------------------------------------------------------- training

    public sealed record TrainingFigures(
        string Model, long Parameters, long FlopParameters, int SequenceLength, int BatchSize, int MeasuredSteps,
        double SecondsPerStep, double TokensPerSecond, double ModelTflopsPerSecond, double Mfu, double MfuWithAttention,
        double CpuSecondsPerStep, double TokensPerCpuSecond, double CpuMfu, double PeakRssMiB, double FirstLoss, double LastLoss);

    private static IEnumerable<(string Name, DecoderConfig Config, int SequenceLength, int[] Batches)> TrainingCases(bool quick)
    {
        var tiny = BootstrapModelOptions.SafetuneTiny;
        yield return (tiny.Name, Llama(tiny.VocabularySize, tiny.HiddenSize, tiny.IntermediateSize, tiny.Layers, tiny.AttentionHeads, tiny.KeyValueHeads, tied: false),
            tiny.MaxSequenceLength, quick ? [4] : [tiny.BatchSize / 2, tiny.BatchSize]);
        if (!quick)
            yield return ("llama-100M", Llama(vocabulary: 16384, hidden: 768, intermediate: 2048, layers: 12, heads: 12, kvHeads: 12, tied: true), 256, [1, 2]);
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

    /// <summary>Full fine-tuning through <see cref="SftTrainer"/> on random full-length rows; the first step is warm-up.</summary>
    private static TrainingFigures MeasureTraining(string name, DecoderConfig config, int sequenceLength, int batch, int measuredSteps,
        MatmulFigures peak, Action<string> log)
    {
        ResetPeakRss();
        using var model = DecoderLM.CreateRandom(config, seed: 1);
        var parameters = model.parameters().Sum(p => p.numel());
        // Embedding lookups are not FLOPs; a tied matrix still does the output projection, so it counts once.
        var flopParameters = parameters - (config.TieWordEmbeddings ? 0 : (long)config.VocabSize * config.HiddenSize);
        var steps = measuredSteps + 1;
        var examples = RandomExamples(batch * steps, sequenceLength, config.VocabSize, seed: 5);
        var stamps = new List<(TimeSpan At, double Cpu, long Tokens, double Loss)>();
        var clock = Stopwatch.StartNew();
        var observer = new StepObserver(p => stamps.Add((clock.Elapsed, CpuSeconds(), p.TokensSeen, p.TrainLoss)));
        var options = new SftTrainerOptions
        {
            Epochs = 1, BatchSize = batch, MaxSequenceLength = sequenceLength, LearningRate = 3e-4, WarmupSteps = 1,
            Precision = TrainingPrecision.Float32, Seed = 1,
        };
        new SftTrainer(model, options, observer: observer).Train(examples);

        var measured = stamps.Count - 1;
        var seconds = (stamps[^1].At - stamps[0].At).TotalSeconds;
        var cpuSeconds = stamps[^1].Cpu - stamps[0].Cpu;
        var tokens = (double)(stamps[^1].Tokens - stamps[0].Tokens);
        var tokensPerSecond = tokens / seconds;
        var flopsPerToken = 6.0 * flopParameters;
        var attentionFlopsPerToken = 12.0 * config.NumHiddenLayers * config.HiddenSize * sequenceLength;
        var figures = new TrainingFigures(name, parameters, flopParameters, sequenceLength, batch, measured,
            Math.Round(seconds / measured, 3), Math.Round(tokensPerSecond, 1), Math.Round(flopsPerToken * tokensPerSecond / 1e12, 4),
            Math.Round(flopsPerToken * tokensPerSecond / (peak.GflopsPerSecond * 1e9), 4),
            Math.Round((flopsPerToken + attentionFlopsPerToken) * tokensPerSecond / (peak.GflopsPerSecond * 1e9), 4),
            Math.Round(cpuSeconds / measured, 3), Math.Round(tokens / cpuSeconds, 1),
            Math.Round(flopsPerToken * tokens / cpuSeconds / (peak.GflopsPerCpuSecond * 1e9), 4),
            Math.Round(PeakRssMiB(), 1), Math.Round(stamps[0].Loss, 4), Math.Round(stamps[^1].Loss, 4));
        log($"train {name} ({parameters / 1e6:F1}M) B={batch} T={sequenceLength}: {figures.TokensPerSecond:F0} tok/s, " +
            $"{figures.SecondsPerStep:F2} s/step, MFU {figures.Mfu:P1} (with attention {figures.MfuWithAttention:P1}), " +
            $"{figures.TokensPerCpuSecond:F0} tok per CPU-s, CPU-time MFU {figures.CpuMfu:P1}, peak RSS {figures.PeakRssMiB:F0} MiB");
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

    public sealed record LiveTensorFigures(string Model, int Steps, IReadOnlyList<(int Step, long Live)> Samples)
    {
        public long Growth => Samples[^1].Live - Samples[0].Live;
    }

    private static LiveTensorFigures LiveTensors(int steps, Action<string> log)
    {
        var config = Llama(vocabulary: 256, hidden: 32, intermediate: 64, layers: 2, heads: 4, kvHeads: 2, tied: false);
        using var model = DecoderLM.CreateRandom(config, seed: 1);
        var threads = torch.get_num_threads();
        torch.set_num_threads(1); // a tiny model gains nothing from intra-op threads
        var samples = new List<(int, long)>();
        var observer = new StepObserver(p =>
        {
            if (p.Step == 1 || p.Step % (steps / 10) == 0) samples.Add((p.Step, DisposeScopeManager.Statistics.ThreadTotalLiveCount));
        });
        var options = new SftTrainerOptions { Epochs = steps, MaxSteps = steps, BatchSize = 4, MaxSequenceLength = 32, EvalEverySteps = 100 };
        new SftTrainer(model, options, observer: observer)
            .Train(RandomExamples(8, 32, config.VocabSize, seed: 9), RandomExamples(4, 32, config.VocabSize, seed: 10));
        torch.set_num_threads(threads);
        var figures = new LiveTensorFigures("tiny-llama-0.05M", steps, samples);
        log($"live tensors over {steps} steps: {string.Join(", ", samples.Select(s => $"{s.Item1}:{s.Item2}"))}");
        return figures;
    }

    // ---------------------------------------------------------------- machine and memory

    private static JsonObject Machine()
    {
        string Read(string path) => File.Exists(path) ? File.ReadAllText(path) : "";
        var cpuinfo = Read("/proc/cpuinfo").Split('\n');
        string Field(string key) => cpuinfo.FirstOrDefault(l => l.StartsWith(key, StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown";
        var flags = Field("flags").Split(' ');
        var memKb = Read("/proc/meminfo").Split('\n').FirstOrDefault(l => l.StartsWith("MemTotal", StringComparison.Ordinal))?
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1];
        return new JsonObject
        {
            ["cpu"] = Field("model name"),
            ["logical_cores"] = Environment.ProcessorCount,
            ["simd"] = string.Join(" ", new[] { "avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16" }.Where(flags.Contains)),
            ["memory_gib"] = memKb is null ? null : Math.Round(long.Parse(memKb, CultureInfo.InvariantCulture) / 1048576.0, 1),
            ["os"] = RuntimeInformation.OSDescription,
            ["dotnet"] = RuntimeInformation.FrameworkDescription,
            ["torchsharp"] = typeof(torch).Assembly.GetName().Version?.ToString(),
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

    // ---------------------------------------------------------------- report

    private static string Markdown(JsonObject machine, MatmulFigures peak, IReadOnlyList<TrainingFigures> training,
        IReadOnlyList<GenerationFigures> generation, LiveTensorFigures leak)
    {
        var md = new StringBuilder();
        md.AppendLine("# Engine benchmark (`fts bench engine`)").AppendLine();
        md.AppendLine($"Measured {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC. Machine: {machine["cpu"]}, {machine["logical_cores"]} logical cores " +
            $"({machine["simd"]}), {machine["memory_gib"]} GiB, {machine["os"]}, {machine["dotnet"]}, TorchSharp {machine["torchsharp"]}, " +
            $"torch threads {torch.get_num_threads()}. Load average at start: {machine["load_average"]} (the machine is shared, so figures are noisy).").AppendLine();
        md.AppendLine("## fp32 matmul peak (same run)").AppendLine();
        md.AppendLine("| n | GFLOP/s (wall) | GFLOP per CPU-second |").AppendLine("|---|---|---|");
        foreach (var p in peak.Points) md.AppendLine($"| {p.Size} | {p.GflopsPerSecond:F1} | {p.GflopsPerCpuSecond:F1} |");
        md.AppendLine().AppendLine($"Peak used for MFU: **{peak.GflopsPerSecond:F1} GFLOP/s** wall clock, " +
            $"**{peak.GflopsPerCpuSecond:F1} GFLOP per CPU-second** (process user+system time, all threads).").AppendLine();
        md.AppendLine("## SFT training (full fine-tuning, fp32, AdamW, through `SftTrainer`)").AppendLine();
        md.AppendLine("MFU = 6 · N · tokens/s / matmul peak, N = parameters without the input embedding lookup table; " +
            "\"with attention\" adds 12 · layers · hidden · T FLOPs per token. CPU-time MFU divides the model FLOPs by the process " +
            "CPU time and compares with the matmul FLOPs per CPU-second, which factors out time the shared machine gave to other processes. " +
            "The first step is warm-up and not timed.").AppendLine();
        md.AppendLine("| model | params | T | batch | s/step | tokens/s | MFU | MFU with attention | CPU-s/step | tokens per CPU-s | CPU-time MFU | peak RSS MiB | loss first → last |");
        md.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var t in training)
            md.AppendLine($"| {t.Model} | {t.Parameters / 1e6:F1}M | {t.SequenceLength} | {t.BatchSize} | {t.SecondsPerStep:F2} | {t.TokensPerSecond:F0} | " +
                $"{t.Mfu:P1} | {t.MfuWithAttention:P1} | {t.CpuSecondsPerStep:F2} | {t.TokensPerCpuSecond:F0} | {t.CpuMfu:P1} | {t.PeakRssMiB:F0} | {t.FirstLoss:F3} → {t.LastLoss:F3} |");
        md.AppendLine().AppendLine("## Generation (greedy, KV cache, 32-token prompts)").AppendLine();
        md.AppendLine("| model | batch | new tokens | seconds | tokens/s |").AppendLine("|---|---|---|---|---|");
        foreach (var g in generation) md.AppendLine($"| {g.Model} | {g.BatchSize} | {g.NewTokens} | {g.Seconds:F2} | {g.TokensPerSecond:F1} |");
        md.AppendLine().AppendLine($"## Live tensors over {leak.Steps} training steps ({leak.Model}, validation every 100 steps)").AppendLine();
        md.AppendLine("`DisposeScopeManager.Statistics.ThreadTotalLiveCount` after the step:").AppendLine();
        md.AppendLine("| step | live tensors |").AppendLine("|---|---|");
        foreach (var (step, live) in leak.Samples) md.AppendLine($"| {step} | {live} |");
        md.AppendLine().AppendLine($"Growth from step 1 to step {leak.Steps}: **{leak.Growth}**.");
        return md.ToString();
    }

    private sealed class StepObserver(Action<TrainingProgress> onProgress) : ITrainingObserver
    {
        public void OnProgress(TrainingProgress progress) => onProgress(progress);
    }
}
