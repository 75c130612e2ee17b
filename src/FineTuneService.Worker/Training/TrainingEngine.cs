using FineTuneService.Contracts;
using FineTuneService.Contracts.Jobs;
using FineTuneService.Contracts.Safety;
using FineTuneService.Datasets;
using FineTuneService.Datasets.Corpus;
using FineTuneService.Datasets.Sft;
using FineTuneService.Datasets.Tokenization;
using FineTuneService.Ml.Training.Preference;
using FineTuneService.Ml.Lora;
using FineTuneService.Ml.Models;
using FineTuneService.Ml.Safety.Strategies;
using FineTuneService.Ml.Safety.Strategies.FrozenLayers;
using FineTuneService.Ml.Training;
using FineTuneService.Worker.Jobs;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using static TorchSharp.torch;

namespace FineTuneService.Worker.Training;

/// <summary>Everything one training run needs, prepared by the job runner.</summary>
public sealed record TrainingRequest(
    string ModelFolder,
    string BaseModelReference,
    string Device,
    IReadOnlyList<ChatExample> Training,
    IReadOnlyList<ChatExample> Validation,
    ResolvedHyperparameters Hyperparameters,
    SafetyPlan Safety,
    long Seed,
    string CheckpointDirectory,
    string? ResumeFrom,
    string OutputFolder,
    LoraConfig? Lora = null,
    SafetyLayerLocation? SafetyLayers = null,
    string? TokenizerFolder = null,
    PreferenceTraining? Preference = null)
{
    /// <summary>Where the tokenizer and chat template come from: the root base model's folder (continued training), else the model's own.</summary>
    public string TokenizerSource => TokenizerFolder ?? ModelFolder;
}

/// <summary>
/// A DPO job's pairs and β. <see cref="TrainingRequest.Training"/> and <see cref="TrainingRequest.Validation"/> then
/// hold the chosen sides (what the safety evaluation and the strategies see as the job's data).
/// </summary>
public sealed record PreferenceTraining(IReadOnlyList<PreferenceExample> Training, IReadOnlyList<PreferenceExample> Validation, double Beta);

/// <summary>
/// Bridge from a job to the engine: loads the base model's Hugging Face folder onto the device, tokenizes the chats
/// with the model's tokenizer and chat template, runs <see cref="SftTrainer"/> synchronously, and on completion
/// saves the trained model as a Hugging Face folder (tokenizer files copied along).
/// </summary>
public sealed class TrainingEngine(IOptions<WorkerOptions> options, WorkerPrecision precision, ILoggerFactory loggers, TimeProvider clock)
{
    private readonly ILogger _logger = loggers.CreateLogger<TrainingEngine>();

    /// <summary>The shipped safety data, read once; the first <see cref="WorkerOptions.SafetyExamples"/> rows of each set.</summary>
    private readonly Lazy<SafetyData> _safetyData = new(() => LoadSafetyData(options.Value.SafetyExamples, loggers.CreateLogger<TrainingEngine>()));

    /// <param name="inspectStage">
    /// Called on this thread with the trained model after the last step and after each post-training step that
    /// changed the weights (antidote, merge, …), before the next one runs: how the safety evaluation scores every stage.
    /// </param>
    public TrainingResult Run(TrainingRequest request, ITrainingObserver observer, CancellationToken cancel, CancellationToken pause,
        Action<string, DecoderLM, ITextTokenizer>? inspectStage = null)
    {
        var device = TrainingDevice.Resolve(request.Device, _logger);
        var tokenizer = LoadTokenizer(request.TokenizerSource);
        var encoder = new ChatExampleEncoder(tokenizer);
        var maxLength = options.Value.MaxSequenceLength;
        var training = request.Training.Select(e => encoder.Encode(e, maxLength)).ToList();
        var validation = request.Validation.Select(e => encoder.Encode(e, maxLength)).ToList();

        var loaded = HuggingFaceCheckpoint.Load(request.ModelFolder, ScalarType.Float32, device);
        using var model = loaded.Model;
        // LoRA: only the adapters train (the strategies act on the factors); a resumed checkpoint holds them too.
        if (request.Lora is { } lora) LoraAdapter.Inject(model, lora, request.Seed);
        var hyperparameters = request.Hyperparameters;
        var trainerOptions = new SftTrainerOptions
        {
            Epochs = hyperparameters.Epochs,
            BatchSize = hyperparameters.BatchSize,
            LearningRate = options.Value.BaseLearningRate * hyperparameters.LearningRateMultiplier,
            MaxSequenceLength = maxLength,
            PadTokenId = tokenizer.PadTokenId,
            Seed = request.Seed,
            CheckpointEverySteps = options.Value.CheckpointEverySteps,
            CheckpointEveryEpoch = true,
            CheckpointDirectory = request.CheckpointDirectory,
            BaseModelReference = request.BaseModelReference,
            EvalEverySteps = validation.Count > 0 || request.Preference?.Validation.Count > 0 ? options.Value.CheckpointEverySteps : 0,
            ProgressEverySteps = 1, // the observer reads the control flag after every step
            Precision = precision.Training(device),
            Clock = clock,
        };

        var strategies = SafetyStrategies(request, model.Config.NumHiddenLayers, encoder, maxLength);
        try
        {
            void SaveModel(string folder) => SaveModelFolder(model, loaded, request, folder);
            var stageObserver = new EpochWeightsObserver(
                inspectStage is null ? observer : new StageObserver(observer, stage => inspectStage(stage, model, tokenizer)),
                SaveModel);
            var trainer = new SftTrainer(model, trainerOptions, strategies, stageObserver, tokenizer, loggers.CreateLogger<SftTrainer>());
            var result = request.Preference is { } preference
                ? trainer.TrainPreference(Pairs(preference.Training), Pairs(preference.Validation), preference.Beta, request.ResumeFrom, cancel, pause)
                : trainer.Train(training, validation, request.ResumeFrom, cancel, pause);
            if (result.Outcome == TrainingOutcome.Completed) SaveModel(request.OutputFolder);
            return result;
        }
        finally
        {
            foreach (var strategy in strategies.OfType<IDisposable>()) strategy.Dispose();
        }

        List<TokenizedPair> Pairs(IReadOnlyList<PreferenceExample> pairs) =>
            [.. pairs.Select(p => TokenizedPair.Encode(encoder, p, maxLength))];
    }

    /// <summary>
    /// The trainer hooks of the job's safety plan, with the shipped safety data and the base model's located safety
    /// layers (from its row, else the folder's <see cref="SafetyLayersFile"/>). The plan is checked again against what
    /// only the worker knows (the same rules the API applied at create time); a strategy whose data is missing fails
    /// the job with a clear error rather than training without the requested protection.
    /// </summary>
    private IReadOnlyList<ITrainingStrategy> SafetyStrategies(TrainingRequest request, int layerCount, ChatExampleEncoder encoder, int maxLength)
    {
        if (request.Safety.IsNone) return [];
        var layersPath = Path.Combine(request.ModelFolder, SafetyLayersFile);
        var layers = request.SafetyLayers ?? (File.Exists(layersPath) ? SafetyLayerLocation.FromJson(File.ReadAllText(layersPath)) : null);
        try
        {
            request.Safety.Validate(new ModelFacts(layerCount, SafetyLayersLocated: layers is not null, LoraAdapter: request.Lora is not null));
            return SafetyTrainingStrategies.Create(request.Safety, _safetyData.Value.Encode(encoder, maxLength, layers));
        }
        catch (ContractViolation e)
        {
            throw new JobFailureException(InvalidSafetyStrategy, e.Message, e.Param, e);
        }
        catch (SafetyStrategyConfigurationException e)
        {
            throw new JobFailureException(InvalidSafetyStrategy, e.Message, "safety", e);
        }
    }

    private const string InvalidSafetyStrategy = "invalid_safety_strategy";

    private static SafetyData LoadSafetyData(int count, ILogger logger)
    {
        try
        {
            return SafetyData.FromShippedData(new ShippedData(), count);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            // Strategies that need these sets then fail their jobs with a clear message.
            logger.LogWarning("Safety data sets are missing ({Message}); strategies that need them are unavailable", e.Message);
            return SafetyData.Empty;
        }
    }

    /// <summary>
    /// The model as a Hugging Face folder: the merged weights, and for LoRA the PEFT adapter in
    /// <see cref="JobAdapter.AdapterFolder"/>. The same for epoch checkpoints and the final model, so a last epoch
    /// without post-training steps stores the same bytes once. The model is left as it was (adapters stay wrapped).
    /// </summary>
    private static void SaveModelFolder(DecoderLM model, LoadedModel loaded, TrainingRequest request, string folder)
    {
        if (request.Lora is not { } lora)
            HuggingFaceCheckpoint.Save(model, folder, loaded.Generation, copyOtherFilesFrom: request.TokenizerSource);
        else
        {
            LoraAdapter.Save(model, lora, Path.Combine(folder, JobAdapter.AdapterFolder));
            using var scope = NewDisposeScope();
            HuggingFaceCheckpoint.Save(model.Config, LoraAdapter.MergedStateDict(model), folder, loaded.Generation, model.DType,
                copyOtherFilesFrom: request.TokenizerSource);
        }
        // The base's located layers go with the model, as a shipped safety_layers.json does, for jobs that start from it.
        var layersFile = Path.Combine(folder, SafetyLayersFile);
        if (request.SafetyLayers is { } located && !File.Exists(layersFile)) File.WriteAllText(layersFile, located.ToJson());
    }

    /// <summary>
    /// Writes the model folder beside every end-of-epoch checkpoint before passing the checkpoint on, so the recorder
    /// stores it as the checkpoint's weights: OpenAI's epoch checkpoints are usable models.
    /// </summary>
    private sealed class EpochWeightsObserver(ITrainingObserver inner, Action<string> saveModel) : ITrainingObserver
    {
        public void OnProgress(TrainingProgress progress) => inner.OnProgress(progress);
        public void OnEvaluation(EvaluationResult evaluation) => inner.OnEvaluation(evaluation);
        public void OnStage(string stage) => inner.OnStage(stage);

        public void OnCheckpoint(CheckpointWritten checkpoint)
        {
            if (!checkpoint.EndOfEpoch)
            {
                inner.OnCheckpoint(checkpoint);
                return;
            }
            var weights = checkpoint.Directory + "-model";
            if (Directory.Exists(weights)) Directory.Delete(weights, recursive: true);
            saveModel(weights);
            var adapter = Path.Combine(weights, JobAdapter.AdapterFolder);
            inner.OnCheckpoint(checkpoint with { WeightsDirectory = weights, AdapterDirectory = Directory.Exists(adapter) ? adapter : null });
        }
    }

    /// <summary>Forwards everything to the job's observer and hands each weights stage to the inspection callback.</summary>
    private sealed class StageObserver(ITrainingObserver inner, Action<string> onStage) : ITrainingObserver
    {
        public void OnProgress(TrainingProgress progress) => inner.OnProgress(progress);
        public void OnEvaluation(EvaluationResult evaluation) => inner.OnEvaluation(evaluation);
        public void OnCheckpoint(CheckpointWritten checkpoint) => inner.OnCheckpoint(checkpoint);

        public void OnStage(string stage)
        {
            inner.OnStage(stage);
            onStage(stage);
        }
    }

    /// <summary>Optional file of a base model folder: its located safety layers (<see cref="SafetyLayerLocation"/> JSON).</summary>
    public const string SafetyLayersFile = DecoderSafetyLayers.FileName;

    private static ITextTokenizer LoadTokenizer(string folder)
    {
        try
        {
            return TokenizerFolder.Load(folder);
        }
        catch (Exception e) when (e is FileNotFoundException or InvalidDataException)
        {
            throw new JobFailureException("invalid_model", $"The base model has no usable tokenizer: {e.Message}", "model", e);
        }
    }
}
