using System.Text;
using static FineTuneService.Research.Benchmarks.EngineBenchmark;

namespace FineTuneService.Research.Benchmarks;

/// <summary>The engine benchmark's markdown report.</summary>
internal static class EngineBenchmarkMarkdown
{
    /// <summary>Issue 14's goals, reported against what was measured.</summary>
    private const double MfuGoal = 0.70, AnchorGoal = 2.0;

    public static string Render(EngineReport report)
    {
        var (machine, settings) = (report.Machine, report.Settings);
        var md = new StringBuilder();
        md.AppendLine("# Engine benchmark (`fts bench engine`)").AppendLine();
        if (settings.Quick) md.AppendLine("**Quick smoke run (small sizes, short timings): not a measurement.**").AppendLine();
        md.AppendLine($"Measured {report.CreatedAt:yyyy-MM-dd HH:mm} UTC. Machine: {machine["cpu"]}, {machine["logical_cores"]} logical cores, " +
            $"CPU flags: {Flags(machine)}; {machine["memory_gib"]} GiB, {machine["os"]}, {machine["dotnet"]}, TorchSharp {machine["torchsharp"]}, " +
            $"torch threads {report.TorchThreads}. Load average at start: {machine["load_average"]}.").AppendLine();

        Peak(md, "fp32 matmul peak", report.Float32, settings);
        md.AppendLine($"Peak used for MFU: **{report.Float32.GflopsPerSecond:F1} GFLOP/s** ({report.Float32.BestSize}², spread " +
            $"{report.Float32.SpreadAtBestSize:P0} over its repeats), **{report.Float32.GflopsPerCpuSecond:F1} GFLOP per CPU-second** for CPU-time MFU.").AppendLine();

        Peak(md, "bf16 matmul", report.BFloat16, settings);
        var precision = report.Precision;
        md.AppendLine($"bf16 / fp32 at {precision.Size}²: **{precision.Speedup:F2}×** ({precision.BFloat16Gflops:F1} vs {precision.Float32Gflops:F1} GFLOP/s). " +
            $"The worker's `Worker:CpuMixedPrecision=Auto` uses bf16 compute (fp32 master weights) only where this is at least " +
            $"{precision.MinimumSpeedup:F1}×, measured at its start: on this machine it would **{(precision.UseBFloat16 ? "train and evaluate in bf16" : "stay in fp32")}**.").AppendLine();

        md.AppendLine("## SFT training (full fine-tuning, fp32, AdamW, through `SftTrainer`)").AppendLine();
        md.AppendLine($"Each case times steps after one untimed warm-up step, for at least {settings.TrainSeconds:0.#} s and {settings.TrainSteps} steps; " +
            "tokens/s and MFU come from the median step, \"best MFU\" from the fastest, \"spread\" is (slowest − fastest) / median. " +
            "MFU = 6 · N · tokens/s / fp32 matmul peak, N = parameters without the input embedding lookup table; \"with attention\" adds " +
            "12 · layers · hidden · T FLOPs per token. CPU-time MFU divides model FLOPs by the process CPU time and compares with the matmul " +
            "FLOPs per CPU-second, which factors out time the machine gave to other processes.").AppendLine();
        md.AppendLine("| model | params | T | batch | steps | s/step | spread | tokens/s | MFU | best MFU | MFU with attention | CPU-time MFU | peak RSS MiB | loss first → last |");
        md.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var t in report.Training)
            md.AppendLine($"| {t.Model} | {t.Parameters / 1e6:F1}M | {t.SequenceLength} | {t.BatchSize} | {t.MeasuredSteps} | {t.SecondsPerStep:F2} | {t.StepSpread:P0} | " +
                $"{t.TokensPerSecond:F0} | {t.Mfu:P1} | {t.BestMfu:P1} | {t.MfuWithAttention:P1} | {t.CpuMfu:P1} | {t.PeakRssMiB:F0} | {t.FirstLoss:F3} → {t.LastLoss:F3} |");
        var bootstrap = report.Training.Where(t => t.PyTorchEager is not null || t.Model == report.Training[0].Model).ToList();
        var bestMfu = bootstrap.MaxBy(t => t.Mfu);
        if (bestMfu is not null)
            md.AppendLine().AppendLine($"MFU goal (≥ {MfuGoal:P0} of the fp32 peak at the bootstrap config, some batch that fits): best is " +
                $"**{bestMfu.Mfu:P1}** at B={bestMfu.BatchSize}: {(bestMfu.Mfu >= MfuGoal ? "met" : "not met")}.");

        md.AppendLine().AppendLine("## PyTorch eager anchor (same decoder, batch, T and timing rule, same run)").AppendLine();
        if (report.Anchor.SkippedBecause is { } reason)
            md.AppendLine($"Skipped: {reason}.");
        else
        {
            md.AppendLine($"`torch_anchor.py` (the engine's Llama layer in PyTorch, attention written out), torch {report.Anchor.TorchVersion}, " +
                $"BLAS: `{report.Anchor.Blas}`, run with `OPENBLAS_CORETYPE`/`OPENBLAS_L2_SIZE` unset.").AppendLine();
            md.AppendLine("| model | batch | T | PyTorch steps | PyTorch s/step | PyTorch tokens/s | engine tokens/s | engine / PyTorch |").AppendLine("|---|---|---|---|---|---|---|---|");
            foreach (var t in report.Training.Where(t => t.PyTorchEager is not null))
                md.AppendLine($"| {t.Model} | {t.BatchSize} | {t.SequenceLength} | {t.PyTorchEager!.Steps} | {t.PyTorchEager.SecondsPerStep:F2} | " +
                    $"{t.PyTorchEager.TokensPerSecond:F0} | {t.TokensPerSecond:F0} | **{t.EngineOverPyTorch:F2}×** |");
            var bestRatio = report.Training.Where(t => t.EngineOverPyTorch is not null).MaxBy(t => t.EngineOverPyTorch);
            if (bestRatio is not null)
                md.AppendLine().AppendLine($"Goal (≥ {AnchorGoal:F0}× PyTorch eager on the same config): {(bestRatio.EngineOverPyTorch >= AnchorGoal ? "met" : "not met")} " +
                    $"(best {bestRatio.EngineOverPyTorch:F2}× at B={bestRatio.BatchSize}).");
        }

        md.AppendLine().AppendLine("## Generation (greedy, KV cache, 32-token prompts)").AppendLine();
        md.AppendLine("| model | batch | new tokens | seconds | tokens/s |").AppendLine("|---|---|---|---|---|");
        foreach (var g in report.Generation) md.AppendLine($"| {g.Model} | {g.BatchSize} | {g.NewTokens} | {g.Seconds:F2} | {g.TokensPerSecond:F1} |");
        if (report.LiveTensors is not { } leak) return md.ToString();
        md.AppendLine().AppendLine($"## Live tensors over {leak.Steps} training steps ({leak.Model}, validation every 100 steps)").AppendLine();
        md.AppendLine("`DisposeScopeManager.Statistics.ThreadTotalLiveCount` after the step:").AppendLine();
        md.AppendLine("| step | live tensors |").AppendLine("|---|---|");
        foreach (var (step, live) in leak.Samples) md.AppendLine($"| {step} | {live} |");
        md.AppendLine().AppendLine($"Growth from step 1 to step {leak.Steps}: **{leak.Growth}**.");
        return md.ToString();
    }

    private static void Peak(StringBuilder md, string title, PeakFigures peak, Settings settings)
    {
        md.AppendLine($"## {title} (same run; {settings.MatmulRepeats} repeats of at least {settings.MatmulSeconds:0.#} s per size)").AppendLine();
        md.AppendLine("| n | best GFLOP/s | median | worst | spread | best GFLOP per CPU-second |").AppendLine("|---|---|---|---|---|---|");
        foreach (var p in peak.Points)
            md.AppendLine($"| {p.Size} | {p.Best:F1} | {p.Median:F1} | {p.Worst:F1} | {p.Spread:P0} | {p.BestPerCpuSecond:F1} |");
        md.AppendLine();
    }

    private static string Flags(System.Text.Json.Nodes.JsonObject machine) =>
        machine["cpu_flags"]?.GetValue<string>() is { Length: > 0 } flags ? flags : "none of avx2/fma/avx512/amx";
}
