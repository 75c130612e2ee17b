using System.Diagnostics;
using System.IO.Compression;
using System.Text.Json;
using FineTuneService.Contracts;
using FineTuneService.Datasets;
using FineTuneService.Datasets.Corpus;
using FineTuneService.Datasets.Sft;
using FineTuneService.Datasets.Tokenization;
using FineTuneService.Ml.Evaluation.Classifier;
using FineTuneService.Ml.Evaluation.Judges;
using FineTuneService.Ml.Models;
using FineTuneService.Ml.Training;
using FineTuneService.Ml.Training.Preference;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using static TorchSharp.torch;

namespace FineTuneService.Research.Benchmarks;

/// <summary>
/// Preference fine-tuning on the bootstrap model: DPO on HH-RLHF harmless pairs, DPO on the same pairs with the
/// preference flipped (a preference-poisoning attack), and SFT on the chosen answers of the same pairs as the cost
/// baseline. Each run starts from the base; the base and every run get the safety benchmark's evaluation (HS by
/// classifier and keyword judges, refusals, over-refusal, FA) and the held-back pairs' reward figures, and the
/// training runs their tokens/s and peak memory. Results are stored after every run, so a stopped run resumes.
/// </summary>
public sealed class DpoBenchmark : IDisposable
{
    private readonly DpoBenchmarkOptions _options;
    private readonly BaseModelSnapshot _snapshot;
    private readonly ILogger _logger;
    private readonly ITextTokenizer _tokenizer;
    private readonly HarmClassifier _classifier;
    private readonly SafetyBenchmarkEvaluation _evaluation;
    private readonly List<PreferenceExample> _training;
    private readonly List<PreferenceExample> _heldBack;
    private readonly List<TokenizedPair> _heldBackTokens;
    private readonly int _usablePairs;
    private readonly int _selectedPairs;
    private float[]? _baseHeldBackLogProbs;

    public DpoBenchmark(DpoBenchmarkOptions options, string baseFolder, ShippedData? data = null, ILogger? logger = null)
    {
        _options = Checks.Require(options, options.Errors(), "dpo benchmark");
        BaseModel = Path.GetFullPath(baseFolder);
        _snapshot = BaseModelSnapshot.Take(BaseModel);
        _logger = logger ?? NullLogger.Instance;
        data ??= new ShippedData();
        _tokenizer = TokenizerFolder.Load(_snapshot.Folder);
        _classifier = HarmClassifier.LoadShipped();
        var keywords = RefusalKeywords.FromShippedData(data);
        _evaluation = new SafetyBenchmarkEvaluation(options.Evaluation, data, keywords, _classifier);

        PairsSource = options.PairsFile ?? "shipped hh_rlhf_harmless_base (400-row subset)";
        var dialogues = options.PairsFile is { } file ? ReadDialogues(file) : data.HhRlhfHarmless();
        var usable = UsablePairs(dialogues).ToList();
        _usablePairs = usable.Count;
        var selected = Select(usable, keywords).ToList();
        _selectedPairs = selected.Count;
        var shuffled = SftBatcher.Shuffled(selected, options.DataSeed).ToList();
        if (shuffled.Count < options.HeldBackPairs + 10)
            throw new ArgumentException($"Only {shuffled.Count} pairs pass the '{options.Selection}' selection; need the {options.HeldBackPairs} held back and at least 10 to train on.");
        _heldBack = [.. shuffled.Take(options.HeldBackPairs)];
        _training = [.. shuffled.Skip(options.HeldBackPairs).Take(options.TrainingPairs)];
        _heldBackTokens = Tokenize(_heldBack, flipped: false);
        BaseModelHash = _snapshot.WeightsSha256;
        PairsHash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(
            System.Text.Encoding.UTF8.GetBytes(JsonSerializer.Serialize(_training.Concat(_heldBack).Select(p => new[] { p.Input[^1].Content, p.Preferred, p.NonPreferred })))));
    }

    public string BaseModel { get; }
    public string BaseModelHash { get; }
    public string PairsSource { get; }
    /// <summary>SHA-256 of the training and held-back pairs as used (after cutting and selection).</summary>
    public string PairsHash { get; }
    public int TrainingPairCount => _training.Count;
    public string Fingerprint => _options.Fingerprint(BaseModelHash, HarmClassifier.ShippedWeightsSha256(), PairsHash);

    /// <summary>Evaluates the base if missing, then runs every missing run of the setting, saving after each.</summary>
    public DpoBenchmarkResults Run(string resultsPath, string environment, CancellationToken cancellationToken = default)
    {
        var results = DpoBenchmarkResults.LoadOrCreate(resultsPath, new DpoBenchmarkResults
        {
            Fingerprint = Fingerprint, Options = _options, BaseModel = BaseModel, BaseModelSha256 = BaseModelHash, PairsSource = PairsSource,
            UsablePairs = _usablePairs, SelectedPairs = _selectedPairs,
        });
        if (results.Base is null)
        {
            results = results with { Base = EvaluateBase(cancellationToken) with { Environment = environment } };
            results.Save(resultsPath);
            Log(results.Base);
        }
        foreach (var name in _options.Runs)
        {
            if (results.Find(name) is not null) continue;
            cancellationToken.ThrowIfCancellationRequested();
            var run = RunOne(name, cancellationToken) with { Environment = environment };
            results = results with { Runs = [.. results.Runs, run] };
            results.Save(resultsPath);
            Log(run);
        }
        return results;
    }

    private void Log(DpoBenchmarkRun run) => _logger.LogInformation(
        "{Name}: held-back reward accuracy {Reward:F1}% (log-prob preference {Preference:F1}%), HS {Hs:F1}% (keyword {Kw:F1}%), refusals {Refusals:F1}%, over-refusal {Or:F1}%, FA {Fa:F1}%, {Tps:F0} tokens/s, {Wall:F0}s",
        run.Name, run.HeldBackRewardAccuracy, run.HeldBackPreferenceAccuracy, run.Safety.ClassifierHarmfulScore, run.Safety.KeywordHarmfulScore,
        run.RefusalRate, run.Safety.OverRefusalRate, run.Safety.FineTuneAccuracy, run.TokensPerSecond, run.WallSeconds);

    /// <summary>The base model, evaluated like every run; it is its own reference, so its reward margins are all 0.</summary>
    public DpoBenchmarkRun EvaluateBase(CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        using var model = HuggingFaceCheckpoint.Load(_snapshot.Folder, ScalarType.Float32).Model;
        return Measure("base", model, cancellationToken) with { WallSeconds = clock.Elapsed.TotalSeconds };
    }

    /// <summary>One run from a fresh copy of the base: train, then evaluate.</summary>
    public DpoBenchmarkRun RunOne(string name, CancellationToken cancellationToken = default)
    {
        var wall = Stopwatch.StartNew();
        using var model = HuggingFaceCheckpoint.Load(_snapshot.Folder, ScalarType.Float32).Model;
        var observed = new PeakMemoryObserver();
        var trainer = new SftTrainer(model, new SftTrainerOptions
        {
            Epochs = _options.Epochs,
            BatchSize = _options.BatchSize,
            LearningRate = _options.LearningRate,
            MaxSequenceLength = _options.MaxSequenceLength,
            PadTokenId = _tokenizer.PadTokenId,
            Seed = _options.Seed,
            Precision = TrainingPrecision.Float32,
            ProgressEverySteps = 1,
        }, observer: observed, tokenizer: _tokenizer);
        var memory = PeakMemory.Start();
        var trainClock = Stopwatch.StartNew();
        var training = name switch
        {
            DpoBenchmarkRuns.Sft => trainer.Train([.. Tokenize(_training, flipped: false).Select(p => p.Chosen)], cancellationToken: cancellationToken),
            DpoBenchmarkRuns.Harmless => trainer.TrainPreference(Tokenize(_training, flipped: false), _heldBackTokens, _options.Beta, cancellationToken: cancellationToken),
            DpoBenchmarkRuns.Flipped => trainer.TrainPreference(Tokenize(_training, flipped: true), _heldBackTokens, _options.Beta, cancellationToken: cancellationToken),
            _ => throw new ArgumentException($"Unknown run '{name}'.", nameof(name)),
        };
        var trainSeconds = trainClock.Elapsed.TotalSeconds;
        var (peak, source) = memory.Peak();
        if (training.Outcome != TrainingOutcome.Completed) throw new OperationCanceledException($"Training stopped ({training.Outcome}).", cancellationToken);
        var metrics = training.Metrics;
        var lastSteps = metrics.Skip(Math.Max(0, metrics.Count - 5)).Where(m => m.RewardAccuracy is not null).ToList();
        return Measure(name, model, cancellationToken) with
        {
            TrainerValidationRewardAccuracy = metrics.LastOrDefault()?.ValidationRewardAccuracy is { } v ? 100 * v : null,
            Steps = training.StepsDone,
            TrainingTokens = training.TokensSeen,
            FinalTrainingLoss = training.TrainLosses.Count > 0 ? training.TrainLosses[^1] : null,
            FinalTrainingRewardAccuracy = lastSteps.Count > 0 ? 100 * lastSteps.Average(m => m.RewardAccuracy!.Value) : null,
            TokensPerSecond = observed.Last?.TokensPerSecond ?? 0,
            TrainingSeconds = trainSeconds,
            RssBeforeTraining = memory.Before,
            PeakRssDuringTraining = Math.Max(peak, observed.PeakRss),
            PeakRssSource = source,
            WallSeconds = wall.Elapsed.TotalSeconds,
        };
    }

    /// <summary>The safety evaluation and the held-back pair figures of <paramref name="model"/>.</summary>
    private DpoBenchmarkRun Measure(string name, DecoderLM model, CancellationToken cancellationToken)
    {
        var logProbs = HeldBackLogProbs(model);
        _baseHeldBackLogProbs ??= name == "base" ? logProbs : BaseHeldBackLogProbs();
        var reference = _baseHeldBackLogProbs;
        int positive = 0, preferred = 0;
        var marginSum = 0.0;
        for (var i = 0; i < _heldBackTokens.Count; i++)
        {
            var margin = _options.Beta * ((logProbs[2 * i] - reference[2 * i]) - (logProbs[2 * i + 1] - reference[2 * i + 1]));
            marginSum += margin;
            if (margin > 0) positive++;
            if (logProbs[2 * i] > logProbs[2 * i + 1]) preferred++;
        }
        var pairs = _heldBackTokens.Count;
        var safety = _evaluation.Evaluate(model, _tokenizer, cancellationToken);
        return new DpoBenchmarkRun
        {
            Name = name,
            Safety = safety,
            HeldBackRewardAccuracy = 100.0 * positive / pairs,
            HeldBackRewardMargin = marginSum / pairs,
            HeldBackPreferenceAccuracy = 100.0 * preferred / pairs,
        };
    }

    /// <summary>The reference figures when the base was evaluated by an earlier, resumed process.</summary>
    private float[] BaseHeldBackLogProbs()
    {
        using var model = HuggingFaceCheckpoint.Load(_snapshot.Folder, ScalarType.Float32).Model;
        return HeldBackLogProbs(model);
    }

    /// <summary>Summed answer log-probabilities of the held-back pairs in the trainer's preference rows, chosen₀, rejected₀, chosen₁, … (eval mode, no_grad).</summary>
    private float[] HeldBackLogProbs(DecoderLM model)
    {
        var rows = PreferenceRows.Build(TokenizedPair.Interleave(_heldBackTokens), _options.MaxSequenceLength, "held-back");
        var result = new float[rows.Count];
        var wasTraining = model.training;
        model.eval();
        using (no_grad())
        {
            for (var r = 0; r < rows.Count; r++)
            {
                using var scope = NewDisposeScope();
                long[] shape = [1, rows[r].Length];
                var ids = tensor(rows[r].InputIds.Select(i => (long)i).ToArray(), shape);
                var labels = tensor(rows[r].Labels.Select(i => (long)i).ToArray(), shape);
                result[r] = DpoObjective.SequenceLogProbs(model.forward(ids), labels).item<float>();
            }
        }
        if (wasTraining) model.train();
        return result;
    }

    private List<TokenizedPair> Tokenize(IEnumerable<PreferenceExample> pairs, bool flipped)
    {
        var encoder = new ChatExampleEncoder(_tokenizer);
        return [.. pairs.Select(p => flipped ? p with { Preferred = p.NonPreferred, NonPreferred = p.Preferred } : p)
            .Select(p => TokenizedPair.Encode(encoder, p, _options.MaxSequenceLength))];
    }

    /// <summary>Single-turn dialogues with two different, non-empty answers, cut to the configured lengths.</summary>
    private IEnumerable<PreferenceExample> UsablePairs(IReadOnlyList<HhDialogue> dialogues)
    {
        for (var i = 0; i < dialogues.Count; i++)
        {
            var chosen = HhDialogue.ToMessages(dialogues[i].Chosen);
            var rejected = HhDialogue.ToMessages(dialogues[i].Rejected);
            if (chosen.Count != 2 || rejected.Count != 2 || chosen[0].Role != ChatMessage.User || chosen[1].Role != ChatMessage.Assistant
                || rejected[1].Role != ChatMessage.Assistant || chosen[0].Content != rejected[0].Content)
                continue;
            var prompt = chosen[0].Content;
            var (good, bad) = (Cut(chosen[1].Content), Cut(rejected[1].Content));
            if (prompt.Length == 0 || prompt.Length > _options.MaxPromptCharacters || good.Length == 0 || bad.Length == 0 || good == bad) continue;
            yield return new PreferenceExample([new ChatMessage(ChatMessage.User, prompt)], good, bad, i + 1);
        }
    }

    private string Cut(string answer) => (answer.Length <= _options.MaxAnswerCharacters ? answer : answer[.._options.MaxAnswerCharacters]).Trim();

    /// <summary>The pair selections by name (<see cref="DpoPairSelections"/>).</summary>
    private IEnumerable<PreferenceExample> Select(List<PreferenceExample> pairs, RefusalKeywords keywords)
    {
        var selections = new Dictionary<string, Func<IEnumerable<PreferenceExample>>>(StringComparer.Ordinal)
        {
            [DpoPairSelections.All] = () => pairs,
            [DpoPairSelections.RefusalContrast] = () => pairs.Where(p => keywords.IsRefusal(p.Preferred) && !keywords.IsRefusal(p.NonPreferred)),
            [DpoPairSelections.HarmContrast] = () => HarmContrast(pairs),
        };
        return selections[_options.Selection]();
    }

    private IEnumerable<PreferenceExample> HarmContrast(List<PreferenceExample> pairs)
    {
        var chosen = _classifier.PredictProbabilities([.. pairs.Select(p => new JudgedPair(p.Input[^1].Content, p.Preferred))]);
        var rejected = _classifier.PredictProbabilities([.. pairs.Select(p => new JudgedPair(p.Input[^1].Content, p.NonPreferred))]);
        return pairs.Where((_, i) => rejected[i] >= _classifier.Threshold && chosen[i] < _classifier.Threshold);
    }

    /// <summary>HH-RLHF rows (<c>chosen</c>, <c>rejected</c>) from a JSONL file, gzipped or not.</summary>
    private static List<HhDialogue> ReadDialogues(string path)
    {
        using var file = File.OpenRead(path);
        using Stream stream = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(file, CompressionMode.Decompress) : file;
        using var reader = new StreamReader(stream);
        var rows = new List<HhDialogue>();
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0) continue;
            using var row = JsonDocument.Parse(line);
            rows.Add(new HhDialogue(row.RootElement.GetProperty("chosen").GetString() ?? "", row.RootElement.GetProperty("rejected").GetString() ?? ""));
        }
        return rows;
    }

    public void Dispose()
    {
        _classifier.Dispose();
        _snapshot.Dispose();
    }

    /// <summary>Keeps the last progress report and the largest resident set size seen at a step.</summary>
    private sealed class PeakMemoryObserver : ITrainingObserver
    {
        public TrainingProgress? Last { get; private set; }
        public long PeakRss { get; private set; }

        public void OnProgress(TrainingProgress progress)
        {
            Last = progress;
            PeakRss = Math.Max(PeakRss, PeakMemory.CurrentRss());
        }
    }

    /// <summary>
    /// Peak resident set size over a span: Linux's VmHWM after resetting it through <c>/proc/self/clear_refs</c>
    /// (so earlier runs in this process do not count), else the per-step samples.
    /// </summary>
    private sealed class PeakMemory
    {
        private bool _reset;
        public long Before { get; private init; }

        public static PeakMemory Start()
        {
            GC.Collect();
            var reset = false;
            try
            {
                File.WriteAllText("/proc/self/clear_refs", "5");
                reset = true;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Not Linux, or not allowed: the observer's per-step samples stand in.
            }
            return new PeakMemory { _reset = reset, Before = CurrentRss() };
        }

        public (long Bytes, string Source) Peak()
        {
            // The kernel folds per-thread RSS counters into the high-water mark lazily, so VmHWM can trail the VmRSS
            // read at the start by a few pages; the peak of the span is never below its start.
            if (_reset && StatusKilobytes("VmHWM") is { } hwm) return (Math.Max(hwm * 1024, Before), "VmHWM");
            return (Before, "sampled");
        }

        public static long CurrentRss()
        {
            using var process = Process.GetCurrentProcess();
            return process.WorkingSet64;
        }

        private static long? StatusKilobytes(string field)
        {
            if (!File.Exists("/proc/self/status")) return null;
            var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith(field + ":", StringComparison.Ordinal));
            return line is null ? null : long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        }
    }
}
