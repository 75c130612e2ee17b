using System.Diagnostics;
using System.Text.Json;
using FineTuneService.Datasets;
using FineTuneService.Datasets.Corpus;
using FineTuneService.Datasets.Sft;
using FineTuneService.Datasets.Templates;
using FineTuneService.Datasets.Tokenization;
using FineTuneService.Ml.Models;
using FineTuneService.Ml.Training;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using static TorchSharp.torch;

namespace FineTuneService.Research.Bootstrap;

/// <summary>What a bootstrap build produced and what it cost.</summary>
/// <param name="TokensPerSecond">Training tokens of both phases over their time in optimizer steps (a reused first phase counts its recorded time).</param>
public sealed record BootstrapBuildResult(
    string Directory,
    long Parameters,
    int TrainingExamples,
    long TrainingTokens,
    int Steps,
    double FirstLoss,
    double FinalLoss,
    double? ValidationLoss,
    double TokensPerSecond,
    TimeSpan Duration)
{
    /// <summary>Steps of the first phase; the rest of <see cref="Steps"/> are the sentiment phase's.</summary>
    public int FirstPhaseSteps { get; init; }
    /// <summary>Validation loss on the held-back first-phase examples before the sentiment phase (<see cref="ValidationLoss"/> is after it).</summary>
    public double? FirstPhaseValidationLoss { get; init; }
    /// <summary>The first phase was loaded from the cache folder rather than trained.</summary>
    public bool FirstPhaseReused { get; init; }
}

/// <summary>
/// Builds the bootstrap aligned model from scratch, deterministically: trains a byte-level BPE vocabulary on the
/// bootstrap corpus, then a Llama-style decoder with SFT on the instruction-following and refusal mixes, then a
/// sentiment phase (SST-2 with those mixes replayed), and saves a Hugging Face folder (config, safetensors, tokenizer
/// with its chat template, build_info.json).
/// </summary>
public sealed class BootstrapModelBuilder(BootstrapModelOptions options, ILogger? logger = null)
{
    public const string BuildInfoFile = "build_info.json";

    private readonly ILogger _logger = logger ?? NullLogger.Instance;

    /// <param name="outputDirectory">Created if missing; existing model files are overwritten.</param>
    /// <param name="dataDirectory">Shipped data folder; default <see cref="ShippedData.DefaultDirectory"/>.</param>
    /// <param name="firstPhaseDirectory">
    /// Optional cache of the first phase (<see cref="FirstPhaseCache"/>): reused when it matches this build's first
    /// phase exactly, written otherwise. The result is the same either way; only the time differs.
    /// </param>
    /// <param name="cancellationToken">Stops training before the next step; nothing is saved then.</param>
    public BootstrapBuildResult Build(string outputDirectory, string? dataDirectory = null, string? firstPhaseDirectory = null,
        CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        var corpus = BootstrapCorpus.Build(dataDirectory, options.Corpus);
        var template = ChatTemplate.ChatMl;

        var tokenizer = BpeTrainer.Train(corpus.TokenizerTrainingText(), new BpeTrainerOptions { VocabularySize = options.VocabularySize });
        _logger.LogInformation("Trained a {Vocabulary}-token BPE vocabulary in {Seconds:F1}s", tokenizer.VocabularySize, clock.Elapsed.TotalSeconds);

        var encoder = new ChatExampleEncoder(tokenizer, template);
        var (training, validation) = Split(encoder.EncodeAll(corpus.TrainingMix, options.MaxSequenceLength));
        var sentiment = encoder.EncodeAll(corpus.SentimentMix, options.MaxSequenceLength);

        var config = ModelConfig(tokenizer);
        using var model = DecoderLM.CreateRandom(config, options.Seed);
        var parameters = model.parameters().Sum(p => p.numel());
        _logger.LogInformation("Training {Name}: {Parameters:N0} parameters on {Examples} examples, then {Sentiment} in the sentiment phase",
            options.Name, parameters, training.Count, sentiment.Count);

        void SaveModelFolder(string directory)
        {
            HuggingFaceCheckpoint.Save(model, directory, GenerationConfig.From(config));
            TokenizerFolder.Save(directory, tokenizer, template, options.MaxSequenceLength);
        }

        var observer = new LoggingObserver(_logger);
        var firstPhaseOptions = TrainerOptions(tokenizer);
        var key = FirstPhaseCache.Key(config, firstPhaseOptions, training, validation);
        var cached = firstPhaseDirectory is null ? null : FirstPhaseCache.TryLoad(firstPhaseDirectory, key, model);
        FirstPhaseSummary first;
        if (cached is not null)
        {
            _logger.LogInformation("Reused the first phase from {Directory} ({Steps} steps)", firstPhaseDirectory, cached.Steps);
            first = cached;
        }
        else
        {
            var trained = new SftTrainer(model, firstPhaseOptions, observer: observer, tokenizer: tokenizer, logger: _logger)
                .Train(training, validation, cancellationToken: cancellationToken);
            cancellationToken.ThrowIfCancellationRequested();
            first = new FirstPhaseSummary(key, trained.StepsDone, trained.TokensSeen, trained.TrainLosses.FirstOrDefault(),
                trained.FinalValidationLoss, observer.TrainingTime);
            if (firstPhaseDirectory is not null) FirstPhaseCache.Save(firstPhaseDirectory, first, SaveModelFolder);
        }
        var second = new SftTrainer(model, SentimentPhaseOptions(tokenizer), observer: observer, tokenizer: tokenizer, logger: _logger)
            .Train(sentiment, validation, cancellationToken: cancellationToken);
        cancellationToken.ThrowIfCancellationRequested();

        Directory.CreateDirectory(outputDirectory);
        SaveModelFolder(outputDirectory);

        var trainingSeconds = (first.TrainingTime + observer.TrainingTime).TotalSeconds;
        var build = new BootstrapBuildResult(
            outputDirectory, parameters, training.Count + sentiment.Count, first.TokensSeen + second.TokensSeen, first.Steps + second.StepsDone,
            first.FirstLoss, second.TrainLosses.LastOrDefault(), second.FinalValidationLoss,
            trainingSeconds > 0 ? (first.TokensSeen + second.TokensSeen) / trainingSeconds : 0, clock.Elapsed)
        {
            FirstPhaseSteps = first.Steps,
            FirstPhaseValidationLoss = first.ValidationLoss,
            FirstPhaseReused = cached is not null,
        };
        File.WriteAllText(Path.Combine(outputDirectory, BuildInfoFile),
            JsonSerializer.Serialize(new { options, build = build with { Directory = "." } }, BootstrapModelOptions.Json));
        return build;
    }

    private DecoderConfig ModelConfig(IByteLevelBpeTokenizer tokenizer) => new()
    {
        Architectures = ["LlamaForCausalLM"],
        ModelType = DecoderConfig.Llama,
        VocabSize = tokenizer.VocabularySize,
        HiddenSize = options.HiddenSize,
        IntermediateSize = options.IntermediateSize,
        NumHiddenLayers = options.Layers,
        NumAttentionHeads = options.AttentionHeads,
        NumKeyValueHeads = options.KeyValueHeads,
        MaxPositionEmbeddings = options.MaxSequenceLength * 4,
        TieWordEmbeddings = true,
        BosTokenId = tokenizer.BosTokenId,
        EosTokenIdNode = tokenizer.EosTokenId,
        PadTokenId = tokenizer.PadTokenId,
        TorchDtype = "float32",
    };

    private SftTrainerOptions TrainerOptions(ITextTokenizer tokenizer) => new()
    {
        Epochs = options.Epochs,
        MaxSteps = options.MaxSteps,
        BatchSize = options.BatchSize,
        MaxSequenceLength = options.MaxSequenceLength,
        Packing = true,
        LossAveraging = options.LossAveraging,
        PadTokenId = tokenizer.PadTokenId,
        LearningRate = options.LearningRate,
        WarmupRatio = options.WarmupRatio,
        WeightDecay = options.WeightDecay,
        Seed = options.Seed,
        ProgressEverySteps = 10,
        BaseModelReference = options.Name + ":scratch",
    };

    private SftTrainerOptions SentimentPhaseOptions(ITextTokenizer tokenizer) => TrainerOptions(tokenizer) with
    {
        Epochs = 1,
        MaxSteps = options.SentimentPhase.MaxSteps,
        BatchSize = options.SentimentPhase.BatchSize,
        LearningRate = options.SentimentPhase.LearningRate,
        BaseModelReference = options.Name + ":first-phase",
    };

    /// <summary>Keeps every 50th example apart for the validation loss (deterministic, after the corpus shuffle).</summary>
    private static (List<TokenizedExample> Training, List<TokenizedExample> Validation) Split(List<TokenizedExample> examples)
    {
        var training = new List<TokenizedExample>(examples.Count);
        var validation = new List<TokenizedExample>(examples.Count / 50 + 1);
        for (var i = 0; i < examples.Count; i++) (i % 50 == 49 ? validation : training).Add(examples[i]);
        return (training, validation);
    }

    private sealed class LoggingObserver(ILogger logger) : ITrainingObserver
    {
        /// <summary>Time in optimizer steps of the latest run (validation excluded).</summary>
        public TimeSpan TrainingTime { get; private set; }

        public void OnProgress(TrainingProgress progress)
        {
            TrainingTime = progress.Elapsed;
            logger.LogInformation("step {Step}/{Total} loss {Loss:F3} lr {Lr:E2} {TokensPerSecond:F0} tok/s, {Remaining:hh\\:mm\\:ss} to go",
                progress.Step, progress.TotalSteps, progress.TrainLoss, progress.LearningRate, progress.TokensPerSecond, progress.Remaining);
        }

        public void OnEvaluation(EvaluationResult evaluation) =>
            logger.LogInformation("step {Step} validation loss {Loss:F3}", evaluation.Step, evaluation.ValidationLoss);
    }
}
