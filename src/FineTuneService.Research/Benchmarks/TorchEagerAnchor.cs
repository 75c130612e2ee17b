using System.Diagnostics;
using System.Text.Json.Nodes;
using FineTuneService.Ml.Models;

namespace FineTuneService.Research.Benchmarks;

/// <summary>
/// The engine's decoder trained the same way in PyTorch eager (<c>torch_anchor.py</c>, next to this assembly), run
/// in the same benchmark for a side-by-side tokens/s. Optional: it needs Debian's <c>python3-torch</c> with
/// <c>libopenblas0-pthread</c> (without OpenBLAS, Debian's torch runs reference BLAS at a few GFLOP/s); when the
/// interpreter or torch is missing the benchmark skips it and says why. The engine itself never needs Python.
/// </summary>
public sealed class TorchEagerAnchor
{
    /// <summary>Debian's interpreter: the one python3-torch installs into (a pyenv python3 on PATH has no torch).</summary>
    public const string DebianPython = "/usr/bin/python3";

    public const string ScriptName = "torch_anchor.py";

    /// <summary>OpenBLAS tuning variables some environments set for other programs; unset for the anchor's process only.</summary>
    private static readonly string[] UnsetForAnchor = ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"];

    private readonly string? _python;
    private readonly string? _script;

    private TorchEagerAnchor(string? python, string? script, string? torchVersion, string? blas, string? skippedBecause)
    {
        _python = python;
        _script = script;
        TorchVersion = torchVersion;
        Blas = blas;
        SkippedBecause = skippedBecause;
    }

    public string? TorchVersion { get; private set; }
    /// <summary>The BLAS library the anchor's process mapped (what libblas.so.3 resolves to).</summary>
    public string? Blas { get; private set; }
    public string? SkippedBecause { get; }

    /// <summary>One anchor run; the same fields as the engine's training case.</summary>
    public sealed record Figures(string TorchVersion, string Blas, int Threads, long Parameters, int Batch, int SequenceLength, int Steps,
        double SecondsPerStep, double BestSecondsPerStep, double TokensPerSecond, double FirstLoss, double LastLoss);

    /// <summary>Checks that <paramref name="python"/> imports torch; the result says why the anchor is skipped otherwise.</summary>
    public static TorchEagerAnchor Probe(string? python)
    {
        var script = Path.Combine(AppContext.BaseDirectory, "Benchmarks", ScriptName);
        if (python is null) return new TorchEagerAnchor(null, null, null, null, "disabled (--no-anchor)");
        if (!File.Exists(python)) return new TorchEagerAnchor(null, null, null, null, $"{python} not found (apt-get install -y python3-torch libopenblas0-pthread)");
        if (!File.Exists(script)) return new TorchEagerAnchor(null, null, null, null, $"{script} is missing from the build output");
        var (exit, output) = RunPython(python, ["-c", "import torch; print(torch.__version__)"], TimeSpan.FromMinutes(2));
        return exit == 0
            ? new TorchEagerAnchor(python, script, output.Trim(), null, null)
            : new TorchEagerAnchor(null, null, null, null, $"{python} cannot import torch (apt-get install -y python3-torch libopenblas0-pthread): {Last(output)}");
    }

    /// <summary>Trains <paramref name="config"/> at this batch and length in PyTorch; null (and a log line) when the run fails.</summary>
    public Figures? Run(DecoderConfig config, int batch, int sequenceLength, int threads, double minSeconds, int minSteps, Action<string> log)
    {
        if (_python is null || _script is null) return null;
        var request = new JsonObject
        {
            ["config"] = new JsonObject
            {
                ["vocab_size"] = config.VocabSize,
                ["hidden_size"] = config.HiddenSize,
                ["intermediate_size"] = config.IntermediateSize,
                ["num_hidden_layers"] = config.NumHiddenLayers,
                ["num_attention_heads"] = config.NumAttentionHeads,
                ["num_key_value_heads"] = config.KeyValueHeads,
                ["rms_norm_eps"] = config.RmsNormEps,
                ["rope_theta"] = config.RopeTheta,
                ["tie_word_embeddings"] = config.TieWordEmbeddings,
            },
            ["batch"] = batch,
            ["seq"] = sequenceLength,
            ["threads"] = threads,
            ["min_seconds"] = minSeconds,
            ["min_steps"] = minSteps,
        };
        var (exit, output) = RunPython(_python, [_script, request.ToJsonString()], TimeSpan.FromMinutes(30));
        if (exit != 0)
        {
            log($"PyTorch anchor B={batch} failed (exit {exit}): {Last(output)}");
            return null;
        }
        var result = JsonNode.Parse(output.Trim().Split('\n')[^1])!.AsObject();
        TorchVersion = result["torch_version"]!.GetValue<string>();
        Blas = result["blas"]!.GetValue<string>();
        var figures = new Figures(TorchVersion, Blas, result["threads"]!.GetValue<int>(), result["parameters"]!.GetValue<long>(), batch,
            sequenceLength, result["steps"]!.GetValue<int>(), result["seconds_per_step_median"]!.GetValue<double>(),
            result["seconds_per_step_best"]!.GetValue<double>(), result["tokens_per_second"]!.GetValue<double>(),
            result["first_loss"]!.GetValue<double>(), result["last_loss"]!.GetValue<double>());
        log($"PyTorch eager {TorchVersion} B={batch} T={sequenceLength}: {figures.TokensPerSecond:F0} tok/s (median of {figures.Steps} steps; {Blas})");
        return figures;
    }

    private static (int Exit, string Output) RunPython(string python, IEnumerable<string> arguments, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        foreach (var name in UnsetForAnchor) start.Environment.Remove(name);
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            return (-1, $"timed out after {timeout}");
        }
        process.WaitForExit();
        return (process.ExitCode, process.ExitCode == 0 ? stdout.Result : stdout.Result + stderr.Result);
    }

    private static string Last(string output) => output.Trim().Split('\n').LastOrDefault()?.Trim() ?? "";
}
