using System.Diagnostics;
using FineTuneService.Contracts;
using FineTuneService.Contracts.Safety;
using FineTuneService.Datasets;
using FineTuneService.Datasets.Corpus;
using FineTuneService.Datasets.Evaluation;
using FineTuneService.Datasets.Sft;
using FineTuneService.Datasets.Tokenization;
using FineTuneService.Ml.Evaluation;
using FineTuneService.Ml.Evaluation.Classifier;
using FineTuneService.Ml.Evaluation.Evaluators;
using FineTuneService.Ml.Evaluation.Judges;
using FineTuneService.Ml.Evaluation.PromptSets;
using FineTuneService.Ml.Models;
using FineTuneService.Ml.Safety.Strategies;
using FineTuneService.Ml.Safety.Strategies.FrozenLayers;
using FineTuneService.Ml.Training;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using static TorchSharp.torch;

namespace FineTuneService.Research.Benchmarks;

/// <summary>
/// The harmful fine-tuning benchmark of the safety strategies, in the setting of Vaccine, Booster and Antidote:
/// fine-tune an aligned base on n task rows (SST-2 or AG News, <see cref="SafetyBenchmarkOptions.Task"/>) of which a
/// fraction p is replaced by harmful prompt/answer pairs, with each strategy and the same hyper-parameters, then
/// measure HS (classifier and keyword judges) on held-out harmful prompts, over-refusal on XSTest's safe prompts and
/// FA (exact match) on the task's evaluation split. Results are stored after every
/// cell, so a stopped run resumes where it stopped (<see cref="Run"/>).
/// </summary>
public sealed class SafetyBenchmark : IDisposable
{
    private readonly SafetyBenchmarkOptions _options;
    private readonly BaseModelSnapshot _snapshot;
    private readonly BaseModelSnapshot? _booster;
    private readonly ILogger _logger;
    private readonly ITextTokenizer _tokenizer;
    private readonly ChatExampleEncoder _encoder;
    private readonly HarmClassifier _classifier;
    private readonly SafetyBenchmarkEvaluation _evaluation;
    private readonly IReadOnlyList<ChatExample> _taskRows;
    private readonly IReadOnlyList<HarmfulPair> _attackPool;
    private readonly SafetyData _safetySets;
    private readonly Dictionary<string, SafetyLayerLocation> _layers = new(StringComparer.Ordinal);

    public SafetyBenchmark(SafetyBenchmarkOptions options, string baseFolder, ShippedData? data = null, ILogger? logger = null)
    {
        _options = Checks.Require(options, options.Errors(), "safety benchmark");
        BaseModel = Path.GetFullPath(baseFolder);
        // Every cell loads this private snapshot, so a model rebuilt in place during a long run cannot slip in
        // under the fingerprint of the weights the run started with.
        _snapshot = BaseModelSnapshot.Take(BaseModel);
        if (options.BoosterBase is { } booster)
        {
            BoosterBaseModel = Path.GetFullPath(booster);
            _booster = BaseModelSnapshot.Take(BoosterBaseModel);
            RequireSameTokenizer(_snapshot.Folder, _booster.Folder, BoosterBaseModel);
        }
        _logger = logger ?? NullLogger.Instance;
        data ??= new ShippedData();
        _tokenizer = TokenizerFolder.Load(_snapshot.Folder);
        _encoder = new ChatExampleEncoder(_tokenizer);
        _classifier = HarmClassifier.LoadShipped();
        _evaluation = new SafetyBenchmarkEvaluation(options, data, RefusalKeywords.FromShippedData(data), _classifier);

        _taskRows = SafetyBenchmarkTask.Named(options.Task).TrainingExamples(data).ToList();
        // Every held-out prompt is excluded, not only the evaluated subset, so the subset size can change freely; so
        // is every prompt of a harmful prompts file, which may overlap the shipped training pairs.
        _attackPool = HarmfulFineTuneMix.AttackPool(data, _evaluation.HeldOutHarmful.SelectMany(p => new[] { p.Prompt, p.Key })
            .Concat(options.HarmfulPromptsFile is null ? [] : _evaluation.HarmfulPrompts.Prompts.Select(p => p.Prompt)));
        _safetySets = SafetyData.FromShippedData(data, options.SafetyExamples);
        BaseModelHash = _snapshot.WeightsSha256;
        JudgeHash = HarmClassifier.ShippedWeightsSha256();
    }

    /// <summary>The model folder as given (the run itself reads a snapshot of it taken at construction).</summary>
    public string BaseModel { get; }

    public string BaseModelHash { get; }

    /// <summary>The hardened base of the <c>booster_*</c> rows as given, or null.</summary>
    public string? BoosterBaseModel { get; }

    /// <summary>SHA-256 of the hardened base's weights, or null without one.</summary>
    public string? BoosterBaseModelHash => _booster?.WeightsSha256;

    /// <summary>SHA-256 of the shipped harm classifier: a retrained judge changes every classifier HS.</summary>
    public string JudgeHash { get; }

    public string Fingerprint => _options.Fingerprint(BaseModelHash, JudgeHash);

    public int AttackPoolSize => _attackPool.Count;

    /// <summary>Cells of the grid that the data cannot fill: more task rows than the task has, or more harmful rows than the attack pool.</summary>
    public IEnumerable<string> DataErrors()
    {
        foreach (var ratio in _options.Ratios)
        {
            var harmful = HarmfulFineTuneMix.HarmfulRowCount(_options.Rows, ratio);
            if (_options.Rows - harmful > _taskRows.Count)
                yield return $"p = {ratio} needs {_options.Rows - harmful} {_options.BenchmarkTask.TrainingSplit} rows; the shipped data has {_taskRows.Count}.";
            if (harmful > _attackPool.Count)
                yield return $"p = {ratio} needs {harmful} harmful rows; the attack pool has {_attackPool.Count}.";
        }
    }

    /// <summary>The fine-tuning set of one cell (see <see cref="HarmfulFineTuneMix.Build"/>).</summary>
    public HarmfulFineTuneMix Mix(double ratio, int seed) => HarmfulFineTuneMix.Build(_taskRows, _attackPool, _options.Rows, ratio, seed * 1000);

    /// <summary>The prompts the HS is measured on.</summary>
    public PromptSet HarmfulEvaluationPrompts => _evaluation.HarmfulPrompts;

    /// <summary>
    /// Safety layers of the base for <c>frozen_layers</c>: <c>safety_layers.json</c> in the model folder when present,
    /// else located once now (<see cref="DecoderSafetyLayers.LocateShipped"/>).
    /// </summary>
    public SafetyLayerLocation SafetyLayers(ShippedData? data = null) => SafetyLayersOf(_snapshot, BaseModel, data);

    /// <summary>The same for the hardened base (<c>fts harden</c> does not copy the source's located layers).</summary>
    public SafetyLayerLocation BoosterSafetyLayers(ShippedData? data = null) => SafetyLayersOf(RequireBooster(), BoosterBaseModel!, data);

    private SafetyLayerLocation SafetyLayersOf(BaseModelSnapshot snapshot, string shownAs, ShippedData? data)
    {
        if (_layers.TryGetValue(snapshot.Folder, out var known)) return known;
        var stored = Path.Combine(snapshot.Folder, DecoderSafetyLayers.FileName);
        if (File.Exists(stored)) return _layers[snapshot.Folder] = SafetyLayerLocation.FromJson(File.ReadAllText(stored));
        _logger.LogInformation("No {File} in {Folder}; locating the safety layers", DecoderSafetyLayers.FileName, shownAs);
        using var model = HuggingFaceCheckpoint.Load(snapshot.Folder, ScalarType.Float32).Model;
        return _layers[snapshot.Folder] = DecoderSafetyLayers.LocateShipped(model, _tokenizer, data ?? new ShippedData());
    }

    /// <summary>Runs every missing cell of the grid, saving <paramref name="resultsPath"/> after each one.</summary>
    public SafetyBenchmarkResults Run(string resultsPath, string environment, CancellationToken cancellationToken = default)
    {
        var boosterRows = _options.Strategies.Any(SafetyBenchmarkStrategies.IsBooster);
        var results = SafetyBenchmarkResults.LoadOrCreate(resultsPath, Fingerprint, _options, BaseModel, BaseModelHash,
            boosterRows ? (BoosterBaseModel!, BoosterBaseModelHash!) : null);
        bool Freezes(bool booster) => _options.Strategies.Any(s => SafetyBenchmarkStrategies.IsBooster(s) == booster
            && _options.PlanOf(s).Params<FrozenLayersParams>() is not null);
        if (Freezes(booster: false) && results.SafetyLayers is null) results = results with { SafetyLayers = Range(SafetyLayers()) };
        if (Freezes(booster: true) && results.BoosterSafetyLayers is null) results = results with { BoosterSafetyLayers = Range(BoosterSafetyLayers()) };
        if (results.Base is null)
        {
            results = results with { Base = EvaluateBase(cancellationToken) };
            results.Save(resultsPath);
        }
        if (boosterRows && results.BoosterBase is null)
        {
            results = results with { BoosterBase = EvaluateBase(cancellationToken, booster: true) };
            results.Save(resultsPath);
        }

        // Seed-major: a run stopped part-way still covers the whole grid with its first seeds.
        var grid = (from seed in Enumerable.Range(1, _options.Seeds) from ratio in _options.Ratios from strategy in _options.Strategies
                    select (ratio, strategy, seed)).ToList();
        var done = 0;
        foreach (var (ratio, strategy, seed) in grid)
        {
            done++;
            if (results.Find(strategy, ratio, seed) is not null) continue;
            cancellationToken.ThrowIfCancellationRequested();
            var cell = RunCell(strategy, ratio, seed, cancellationToken) with { Environment = environment };
            results = results with { Cells = [.. results.Cells, cell] };
            results.Save(resultsPath);
            _logger.LogInformation("[{Done}/{Total}] {Strategy} p={Ratio} seed {Seed}: HS {Hs:F1}% (keyword {Kw:F1}%), FA {Fa:F1}%, over-refusal {Or:F1}%, {Wall:F0}s",
                done, grid.Count, strategy, ratio, seed, cell.ClassifierHarmfulScore, cell.KeywordHarmfulScore, cell.FineTuneAccuracy, cell.OverRefusalRate, cell.WallSeconds);
        }
        return results;
    }

    /// <summary>The base model (or, with <paramref name="booster"/>, the hardened base) without fine-tuning, evaluated like every cell.</summary>
    public SafetyBenchmarkCell EvaluateBase(CancellationToken cancellationToken = default, bool booster = false)
    {
        var clock = Stopwatch.StartNew();
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        using var model = HuggingFaceCheckpoint.Load((booster ? RequireBooster() : _snapshot).Folder, ScalarType.Float32).Model;
        var cell = Evaluate(model, cancellationToken);
        return cell with { Strategy = booster ? BoosterBaseRow : "base", HarmfulRatio = 0, Seed = 0, EvaluationSeconds = clock.Elapsed.TotalSeconds, WallSeconds = clock.Elapsed.TotalSeconds,
            CpuSeconds = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds };
    }

    /// <summary>Strategy name of the hardened base's own evaluation.</summary>
    public const string BoosterBaseRow = "booster_base";

    /// <summary>
    /// One cell: build the mix, fine-tune a fresh copy of the base (the hardened base for a <c>booster_*</c> row) with
    /// the row's first phase, apply its post-training steps, evaluate. With <see cref="FineTunes"/> the first phase is
    /// trained once per (base, ratio, seed) and every row that shares it starts from the stored weights.
    /// </summary>
    public SafetyBenchmarkCell RunCell(string strategy, double ratio, int seed, CancellationToken cancellationToken = default)
    {
        var wall = Stopwatch.StartNew();
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var plan = _options.PlanOf(strategy);
        var firstPhase = plan.UpToTraining();
        var booster = SafetyBenchmarkStrategies.IsBooster(strategy);
        var baseFolder = (booster ? RequireBooster() : _snapshot).Folder;
        var mix = Mix(ratio, seed);
        var examples = _encoder.EncodeAll(mix.Examples, _options.MaxSequenceLength);
        var data = _safetySets.Encode(_encoder, _options.MaxSequenceLength,
            plan.Params<FrozenLayersParams>() is null ? null : booster ? BoosterSafetyLayers() : SafetyLayers());
        var trainerOptions = TrainerOptions(seed);
        var key = SafetyBenchmarkFineTunes.Key(Fingerprint, booster ? BoosterBaseModelHash! : BaseModelHash, firstPhase, ratio, seed);

        var stored = FineTunes?.TryLoad(key);
        var reused = stored is not null;
        using var firstPhaseModel = reused ? null : HuggingFaceCheckpoint.Load(baseFolder, ScalarType.Float32).Model;
        SafetyBenchmarkFineTune fineTune;
        Dictionary<string, Tensor> trainedWeights;
        if (stored is { } hit)
        {
            (fineTune, trainedWeights) = hit;
        }
        else
        {
            var trainClock = Stopwatch.StartNew();
            var training = Train(firstPhaseModel!, trainerOptions, SafetyTrainingStrategies.Create(firstPhase, data), t => t.Train(examples, cancellationToken: cancellationToken));
            // A stopped fine-tune must never be evaluated and stored as a finished cell.
            if (training.Outcome != TrainingOutcome.Completed) throw new OperationCanceledException($"Fine-tuning stopped ({training.Outcome}).", cancellationToken);
            fineTune = new SafetyBenchmarkFineTune(training.StepsDone, training.TokensSeen,
                training.TrainLosses.Count > 0 ? training.TrainLosses[^1] : null, trainClock.Elapsed.TotalSeconds);
            trainedWeights = firstPhaseModel!.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter, StringComparer.Ordinal);
            FineTunes?.Save(key, fineTune, trainedWeights);
        }

        try
        {
            var postClock = Stopwatch.StartNew();
            using var finished = plan.AfterTraining.Count > 0 || reused ? HuggingFaceCheckpoint.Load(baseFolder, ScalarType.Float32).Model : null;
            if (finished is not null)
            {
                // The post-training steps see the base as their starting weights, as in an uninterrupted run.
                Train(finished, trainerOptions, SafetyTrainingStrategies.Create(plan, data), t => t.FinishFrom(examples, trainedWeights, cancellationToken));
            }
            var postSeconds = postClock.Elapsed.TotalSeconds;
            var evalClock = Stopwatch.StartNew();
            var cell = Evaluate(finished ?? firstPhaseModel!, cancellationToken);
            return cell with
            {
                Strategy = strategy,
                HarmfulRatio = ratio,
                Seed = seed,
                HarmfulRows = mix.HarmfulRows,
                TaskRows = mix.TaskRows,
                Steps = fineTune.Steps,
                TrainingTokens = fineTune.TrainingTokens,
                FinalTrainingLoss = fineTune.FinalTrainingLoss,
                TrainingSeconds = fineTune.TrainingSeconds + postSeconds,
                ReusedFineTune = reused,
                EvaluationSeconds = evalClock.Elapsed.TotalSeconds,
                WallSeconds = wall.Elapsed.TotalSeconds,
                CpuSeconds = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds,
            };
        }
        finally
        {
            if (reused) foreach (var tensor in trainedWeights.Values) tensor.Dispose();
        }
    }

    /// <summary>Where first-phase fine-tunes are kept and reused; null trains every cell from the base.</summary>
    public SafetyBenchmarkFineTunes? FineTunes { get; init; }

    private SftTrainerOptions TrainerOptions(int seed) => new()
    {
        Epochs = _options.Epochs,
        BatchSize = _options.BatchSize,
        LearningRate = _options.LearningRate,
        MaxSequenceLength = _options.MaxSequenceLength,
        PadTokenId = _tokenizer.PadTokenId,
        Seed = seed,
        Precision = _options.Precision,
        ProgressEverySteps = 1000,
    };

    private TrainingResult Train(DecoderLM model, SftTrainerOptions options, IReadOnlyList<ITrainingStrategy> hooks, Func<SftTrainer, TrainingResult> run)
    {
        try
        {
            return run(new SftTrainer(model, options, hooks, tokenizer: _tokenizer));
        }
        finally
        {
            foreach (var hook in hooks.OfType<IDisposable>()) hook.Dispose();
        }
    }

    private SafetyBenchmarkCell Evaluate(DecoderLM model, CancellationToken cancellationToken) => _evaluation.Evaluate(model, _tokenizer, cancellationToken);

    private BaseModelSnapshot RequireBooster() => _booster
        ?? throw new InvalidOperationException($"The {SafetyBenchmarkStrategies.BoosterPrefix}* rows need SafetyBenchmarkOptions.BoosterBase (--booster-base).");

    /// <summary>Both bases are fed the same encoded rows and prompts, so the hardened one must share the base's tokenizer.</summary>
    private static void RequireSameTokenizer(string baseFolder, string boosterFolder, string shownAs)
    {
        foreach (var file in new[] { "tokenizer.json", "vocab.json", "merges.txt" })
        {
            var (a, b) = (Path.Combine(baseFolder, file), Path.Combine(boosterFolder, file));
            if (File.Exists(a) != File.Exists(b) || (File.Exists(a) && !File.ReadAllBytes(a).AsSpan().SequenceEqual(File.ReadAllBytes(b))))
                throw new ArgumentException($"The booster base {shownAs} has another tokenizer than the base ({file} differs); harden it from the base with fts harden.");
        }
    }

    private static SafetyLayerRange Range(SafetyLayerLocation layers) => new(layers.FirstLayer, layers.LastLayer, layers.Curves.Layers);

    public void Dispose()
    {
        _classifier.Dispose();
        _snapshot.Dispose();
        _booster?.Dispose();
    }
}
