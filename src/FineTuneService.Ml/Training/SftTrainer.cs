using System.Diagnostics;
using System.Security.Cryptography;
using FineTuneService.Datasets;
using FineTuneService.Ml.Models;
using FineTuneService.Ml.Training.Preference;
using FineTuneService.Datasets.Sft;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Training;

/// <summary>
/// Supervised fine-tuning of a causal LM (input ids [B, T] int64 to logits [B, T, V]) on tokenized chat examples:
/// next-token cross-entropy on loss-masked positions, AdamW with warmup + cosine decay, gradient clipping and
/// accumulation, periodic validation and exact checkpoint/resume. Runs synchronously on the calling thread.
/// </summary>
/// <remarks>
/// Under <see cref="TrainingPrecision.BFloat16"/> the trainer converts the model to bf16 (TorchSharp 0.107 has no
/// autocast) and keeps fp32 master copies of the trainable weights in the optimizer. Packed rows are concatenated
/// without a block-diagonal mask (the model takes only input ids), so examples in a row can attend to earlier ones.
/// </remarks>
public sealed class SftTrainer(
    nn.Module<Tensor, Tensor> model,
    SftTrainerOptions options,
    IEnumerable<ITrainingStrategy>? strategies = null,
    ITrainingObserver? observer = null,
    ITextTokenizer? tokenizer = null,
    ILogger? logger = null)
{
    private readonly IReadOnlyList<ITrainingStrategy> strategies = strategies?.ToList() ?? [];
    private readonly ITrainingObserver observer = observer ?? new NullObserver();
    private readonly ILogger logger = logger ?? NullLogger.Instance;

    /// <summary>
    /// Trains until done, cancelled or paused. <paramref name="resumeFrom"/> is a checkpoint directory of a run with the
    /// same model, data and options; training then continues as if it had never stopped.
    /// </summary>
    /// <param name="trainingExamples">Tokenized training examples; the loss covers positions whose next token is in the loss mask.</param>
    /// <param name="validationExamples">Examples for the validation loss (every <see cref="SftTrainerOptions.EvalEverySteps"/> and at the end).</param>
    /// <param name="resumeFrom">Checkpoint directory written by an earlier call with the same data and options.</param>
    /// <param name="cancellationToken">Checked before every optimizer step; stops without saving.</param>
    /// <param name="pauseToken">Checked before every optimizer step; writes a checkpoint, then stops.</param>
    public TrainingResult Train(
        IReadOnlyList<TokenizedExample> trainingExamples,
        IReadOnlyList<TokenizedExample>? validationExamples = null,
        string? resumeFrom = null,
        CancellationToken cancellationToken = default,
        CancellationToken pauseToken = default) =>
        TrainCore(trainingExamples, validationExamples ?? [], resumeFrom, preferenceBeta: null, cancellationToken, pauseToken);

    /// <summary>
    /// Preference training (DPO, <see cref="DpoObjective"/>) with everything else shared with <see cref="Train"/>:
    /// the optimizer, schedule, clipping, accumulation, strategy hooks, checkpoints and resume. A micro-batch holds
    /// <see cref="SftTrainerOptions.BatchSize"/> whole pairs (chosen rows first, then rejected); packing is off. The
    /// reference log-probabilities are those of the starting weights, computed once under <c>no_grad</c> before the first
    /// step and kept in the checkpoints. For LoRA the starting weights are the model with its adapter off (B starts at
    /// zero), so no second copy of the weights is needed.
    /// </summary>
    /// <param name="trainingPairs">Tokenized pairs; each side's loss mask covers its answer.</param>
    /// <param name="validationPairs">Held-back pairs for the validation loss and reward accuracy.</param>
    /// <param name="beta">DPO's β, the strength of the pull towards the reference.</param>
    public TrainingResult TrainPreference(
        IReadOnlyList<TokenizedPair> trainingPairs,
        IReadOnlyList<TokenizedPair>? validationPairs = null,
        double beta = DpoObjective.DefaultBeta,
        string? resumeFrom = null,
        CancellationToken cancellationToken = default,
        CancellationToken pauseToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(beta);
        if (options.Packing) throw new ArgumentException("Preference training does not pack rows: set Packing to false.", nameof(options));
        return TrainCore(TokenizedPair.Interleave(trainingPairs), TokenizedPair.Interleave(validationPairs ?? []), resumeFrom, beta,
            cancellationToken, pauseToken);
    }

    /// <summary>
    /// The end of a completed <see cref="Train"/> without its steps, for callers that share one fine-tune between runs
    /// that differ only in their post-training steps (the safety benchmark's first-phase cache). The strategies'
    /// <see cref="ITrainingStrategy.BeforeTraining"/> sees the model as given (the starting weights), then
    /// <paramref name="trainedWeights"/> replace every parameter and <see cref="ITrainingStrategy.AfterTraining"/> runs
    /// as after the last step. Equal to <see cref="Train"/> when the weights come from a completed run of the same
    /// examples and options whose strategies were these without their post-training steps.
    /// </summary>
    /// <param name="trainedWeights">A value for every parameter of the model, by its checkpoint name.</param>
    /// <returns>A completed result with no steps run here: losses and tokens belong to the run that trained the weights.</returns>
    public TrainingResult FinishFrom(
        IReadOnlyList<TokenizedExample> trainingExamples,
        IReadOnlyDictionary<string, Tensor> trainedWeights,
        CancellationToken cancellationToken = default) =>
        RunWith(trainingExamples, [], resumeFrom: null, preferenceBeta: null, cancellationToken, run => run.FinishWith(trainedWeights));

    private TrainingResult TrainCore(
        IReadOnlyList<TokenizedExample> trainingExamples,
        IReadOnlyList<TokenizedExample> validationExamples,
        string? resumeFrom,
        double? preferenceBeta,
        CancellationToken cancellationToken,
        CancellationToken pauseToken)
    {
        if (pauseToken.CanBeCanceled && string.IsNullOrWhiteSpace(options.CheckpointDirectory))
            throw new ArgumentException("Pausing writes a checkpoint: set SftTrainerOptions.CheckpointDirectory.", nameof(pauseToken));
        return RunWith(trainingExamples, validationExamples, resumeFrom, preferenceBeta, cancellationToken, run => run.Execute(pauseToken));
    }

    private TrainingResult RunWith(
        IReadOnlyList<TokenizedExample> trainingExamples,
        IReadOnlyList<TokenizedExample> validationExamples,
        string? resumeFrom,
        double? preferenceBeta,
        CancellationToken cancellationToken,
        Func<Run, TrainingResult> body)
    {
        options.Validate();
        var device = model.parameters().FirstOrDefault()?.device
            ?? throw new ArgumentException("The model has no parameters.", nameof(model));
        var context = new TrainingContext(model, device, options, tokenizer, logger, observer,
            [.. trainingExamples], validationExamples, cancellationToken)
        {
            Precision = ResolvePrecision(options.Precision, device),
            PreferenceBeta = preferenceBeta,
        };
        foreach (var strategy in strategies) strategy.BeforeTraining(context);

        var run = new Run(this, context, resumeFrom);
        try
        {
            return body(run);
        }
        finally
        {
            run.Dispose();
        }
    }

    private static TrainingPrecision ResolvePrecision(TrainingPrecision requested, Device device) => requested switch
    {
        TrainingPrecision.Auto => device.type == DeviceType.CUDA ? TrainingPrecision.BFloat16 : TrainingPrecision.Float32,
        _ => requested,
    };

    /// <summary>State of one <see cref="Train"/> call.</summary>
    private sealed class Run : IDisposable
    {
        private readonly SftTrainer trainer;
        private readonly TrainingContext context;
        private readonly SftTrainerOptions options;
        private readonly List<TrainingRow> trainRows;
        private readonly List<TrainingRow> validationRows;
        private readonly IReadOnlyList<(string Name, Parameter Parameter)> trainable;
        /// <summary>What the optimizer updates: the trainable parameters, or their fp32 master copies under bf16.</summary>
        private readonly IReadOnlyList<(string Name, Parameter Parameter)> optimized;
        private readonly AdamW optimizer;
        private readonly WarmupCosineSchedule schedule;
        private readonly TrainingSchedule dataSchedule;
        private readonly int microBatchesPerEpoch;
        private readonly int stepsPerEpoch;
        private readonly int totalSteps;
        private readonly string dataFingerprint;
        /// <summary>Per-position weights are needed: per-example averaging or any example weighted other than 1.</summary>
        private readonly bool weightedLoss;
        private readonly List<double> allLosses = [];
        private readonly List<double> allAccuracies = [];
        private readonly List<ValidationPoint> validations = [];
        private readonly List<double> runLosses = [];
        /// <summary>DPO's β; null for supervised training. With it, rows come in pairs (chosen, rejected) and a batch unit is a pair.</summary>
        private readonly double? beta;
        /// <summary>Summed answer log-probabilities of each training (and validation) row under the starting weights (DPO only).</summary>
        private float[] referenceLogProbs = [];
        private float[] validationReferenceLogProbs = [];
        private readonly List<double> allMargins = [];
        private readonly List<double> allRewardAccuracies = [];
        private double? lastValidationRewardAccuracy;
        private int step;
        private long tokensSeen;
        private double? lastValidationLoss;
        private double? lastValidationAccuracy;
        private int lastEvaluatedStep = -1;
        private (int Epoch, int[] Order) epochOrder = (-1, []);

        public Run(SftTrainer trainer, TrainingContext context, string? resumeFrom)
        {
            this.trainer = trainer;
            this.context = context;
            options = context.Options;
            var model = context.Model;

            beta = context.PreferenceBeta;
            if (beta is null)
            {
                trainRows = TrainingRows.Build(context.TrainingExamples, options.MaxSequenceLength, options.Packing, options.Seed, options.LossAveraging);
                validationRows = TrainingRows.Build(context.ValidationExamples, options.MaxSequenceLength, packing: false, options.Seed);
            }
            else
            {
                trainRows = PairRows(context.TrainingExamples, "training");
                validationRows = PairRows(context.ValidationExamples, "validation");
            }
            if (trainRows.Count == 0)
                throw new ArgumentException("No training example has an assistant token to learn from (after truncation to MaxSequenceLength).");
            weightedLoss = beta is null && (options.LossAveraging != LossAveraging.PerToken || context.TrainingExamples.Any(e => e.LossWeight != 1f));

            dataSchedule = options.Schedule(Units);
            microBatchesPerEpoch = dataSchedule.MicroBatchesPerEpoch;
            stepsPerEpoch = dataSchedule.StepsPerEpoch;
            totalSteps = dataSchedule.TotalSteps;
            var warmup = options.WarmupSteps ?? (int)Math.Round(options.WarmupRatio * totalSteps);
            schedule = new WarmupCosineSchedule(options.LearningRate, warmup, totalSteps, options.MinLearningRateRatio);
            dataFingerprint = Fingerprint(trainRows, options, weightedLoss, beta);

            torch.manual_seed(options.Seed);
            if (context.Precision == TrainingPrecision.BFloat16)
            {
                // Masters are copied before the cast so no precision is lost; the cast replaces the model's parameters.
                var masters = TrainableOf(model)
                    .Select(p => (p.Name, new Parameter(p.Parameter.detach().to(ScalarType.Float32).clone(), requires_grad: true)))
                    .ToList();
                model.to(ScalarType.BFloat16);
                trainable = TrainableOf(model);
                optimized = masters;
            }
            else
            {
                trainable = TrainableOf(model);
                optimized = trainable;
            }
            if (trainable.Count == 0) throw new InvalidOperationException("The model has no parameter with requires_grad; nothing to train.");
            context.TrainableParameters = trainable;
            context.TotalSteps = totalSteps;
            optimizer = BuildOptimizer(optimized, options);

            if (resumeFrom is not null) Restore(resumeFrom);
            else if (beta is not null)
            {
                referenceLogProbs = ReferenceLogProbs(trainRows);
                validationReferenceLogProbs = ReferenceLogProbs(validationRows);
            }
            context.Step = step;
            context.Logger.LogInformation(
                "SFT: {Rows} rows, {Steps} steps ({StepsPerEpoch}/epoch), {Trainable} trainable tensors ({Elements} weights), {Precision} on {Device}, starting at step {Step}",
                trainRows.Count, totalSteps, stepsPerEpoch, trainable.Count, trainable.Sum(p => p.Parameter.numel()), context.Precision, context.Device, step);
        }

        public TrainingResult Execute(CancellationToken pauseToken)
        {
            var model = context.Model;
            model.train();
            var stepClock = new Stopwatch();
            var runTokens = 0L;
            var stepsThisRun = 0;
            string? lastCheckpoint = null;
            var outcome = TrainingOutcome.Completed;

            while (step < totalSteps)
            {
                if (context.CancellationToken.IsCancellationRequested)
                {
                    outcome = TrainingOutcome.Cancelled;
                    break;
                }
                if (pauseToken.IsCancellationRequested)
                {
                    lastCheckpoint = WriteCheckpoint();
                    outcome = TrainingOutcome.Paused;
                    break;
                }

                stepClock.Start();
                var (loss, accuracy, tokens, gradNorm, learningRate, preference) = RunStep(step + 1);
                stepClock.Stop();
                step++;
                context.Step = step;
                stepsThisRun++;
                runTokens += tokens;
                tokensSeen += tokens;
                allLosses.Add(loss);
                allAccuracies.Add(accuracy);
                runLosses.Add(loss);
                if (preference is { } figures)
                {
                    allMargins.Add(figures.Margin);
                    allRewardAccuracies.Add(figures.Accuracy);
                }

                if (step % options.ProgressEverySteps == 0 || step == totalSteps)
                {
                    var seconds = stepClock.Elapsed.TotalSeconds;
                    var remaining = TimeSpan.FromSeconds(seconds / stepsThisRun * (totalSteps - step));
                    trainer.observer.OnProgress(new TrainingProgress(
                        step, totalSteps, EpochOf(step), loss, accuracy, learningRate, gradNorm,
                        seconds > 0 ? runTokens / seconds : 0, tokensSeen, stepClock.Elapsed, remaining)
                    {
                        RewardMargin = preference?.Margin,
                        RewardAccuracy = preference?.Accuracy,
                    });
                }
                if (validationRows.Count > 0 && options.EvalEverySteps > 0 && step % options.EvalEverySteps == 0) Evaluate();
                if (options.CheckpointEveryEpoch && (step % stepsPerEpoch == 0 || step == totalSteps))
                {
                    if (validationRows.Count > 0 && lastEvaluatedStep != step) Evaluate();
                    lastCheckpoint = WriteCheckpoint(endOfEpoch: true);
                }
                else if (options.CheckpointEverySteps > 0 && step % options.CheckpointEverySteps == 0 && step < totalSteps)
                    lastCheckpoint = WriteCheckpoint();
            }

            if (outcome == TrainingOutcome.Completed) Complete();
            context.Logger.LogInformation("SFT {Outcome} at step {Step}/{Total}", outcome, step, totalSteps);
            return new TrainingResult(outcome, step, totalSteps, runLosses, lastValidationLoss, tokensSeen, lastCheckpoint)
            {
                Metrics = MetricsHistory(),
            };
        }

        /// <summary>What follows the last step: the final validation and the strategies' post-training steps.</summary>
        private void Complete()
        {
            if (validationRows.Count > 0 && lastEvaluatedStep != step) Evaluate();
            trainer.observer.OnStage(TrainingStages.Training);
            foreach (var strategy in trainer.strategies)
            {
                strategy.AfterTraining(context);
                if (strategy.PostTrainingStep is { } postStep) trainer.observer.OnStage(postStep);
            }
        }

        /// <summary>Takes the weights of a completed run instead of training (<see cref="FinishFrom"/>), then completes.</summary>
        public TrainingResult FinishWith(IReadOnlyDictionary<string, Tensor> trainedWeights)
        {
            using (no_grad())
            {
                foreach (var (name, parameter) in context.Model.named_parameters())
                {
                    if (!trainedWeights.TryGetValue(name, out var trained))
                        throw new ArgumentException($"The trained weights have no tensor '{name}'.", nameof(trainedWeights));
                    if (!trained.shape.SequenceEqual(parameter.shape))
                        throw new ArgumentException($"Trained tensor '{name}' has shape [{string.Join(", ", trained.shape)}], the model [{string.Join(", ", parameter.shape)}].", nameof(trainedWeights));
                    parameter.copy_(trained);
                }
                // Under bf16 the fp32 masters are what a completed run would hold; take them from the full-precision weights.
                if (!ReferenceEquals(optimized, trainable))
                    foreach (var (name, master) in optimized) master.copy_(trainedWeights[name]);
            }
            step = totalSteps;
            context.Step = step;
            Complete();
            context.Logger.LogInformation("SFT finished from trained weights at step {Step}/{Total}", step, totalSteps);
            return new TrainingResult(TrainingOutcome.Completed, step, totalSteps, [], lastValidationLoss, tokensSeen, null) { Metrics = MetricsHistory() };
        }

        /// <summary>One optimizer step (1-based <paramref name="stepNumber"/>) in its own dispose scope.</summary>
        private (double Loss, double TokenAccuracy, long Tokens, double GradNorm, double LearningRate, (double Margin, double Accuracy)? Preference) RunStep(int stepNumber)
        {
            using var scope = NewDisposeScope();
            var (epoch, firstMicroBatch, lastMicroBatch) = dataSchedule.Step(stepNumber);
            var microBatches = Enumerable.Range(firstMicroBatch, lastMicroBatch - firstMicroBatch)
                .Select(m => MicroBatchRows(epoch, m))
                .ToList();
            (double Margin, double Accuracy)? preference = null;
            // Normalise by the step's loss-bearing tokens (or examples) so accumulation equals one big batch.
            var targets = microBatches.Sum(rows => rows.Sum(r => r.WeightSum));
            if (context.Device.type == DeviceType.CUDA)
                torch.cuda.manual_seed(options.Seed * 1_000_003 + stepNumber); // the CUDA generator state is not exposed; reseed per step instead

            var loss = 0.0;
            var tokens = 0L;
            long correct = 0, labelled = 0;
            if (beta is not null)
            {
                // The step's loss is the mean over its pairs, so accumulation equals one big batch of pairs.
                var stepPairs = microBatches.Sum(rows => rows.Count / 2);
                double margin = 0, rewardAccuracy = 0;
                foreach (var rows in microBatches)
                {
                    var dpo = PairLoss(rows, referenceLogProbs, out var microCorrect, out var chosenTargets);
                    var share = (double)(rows.Count / 2) / stepPairs;
                    (dpo.Loss * share).backward();
                    loss += dpo.Loss.ToDouble() * share;
                    margin += dpo.RewardMargin * share;
                    rewardAccuracy += dpo.RewardAccuracy * share;
                    tokens += rows.Sum(r => r.Length);
                    correct += microCorrect;
                    labelled += chosenTargets;
                }
                preference = (margin, rewardAccuracy);
            }
            else
            {
                foreach (var rows in microBatches)
                {
                    var (inputIds, labels) = Collate(rows);
                    var weights = weightedLoss ? CollateWeights(rows, inputIds.shape[1]) : null;
                    var micro = TokenLossSum(inputIds, labels, out var microCorrect, weights) / targets;
                    micro.backward();
                    loss += micro.ToDouble();
                    tokens += rows.Sum(r => r.Length);
                    correct += microCorrect;
                    labelled += rows.Sum(r => r.TargetCount);
                }
            }

            foreach (var strategy in trainer.strategies) strategy.OnGradients(context, stepNumber);

            if (!ReferenceEquals(optimized, trainable))
            {
                for (var i = 0; i < trainable.Count; i++)
                {
                    var grad = trainable[i].Parameter.grad;
                    optimized[i].Parameter.grad = grad is null ? null : grad.to(ScalarType.Float32);
                }
            }

            var parameters = optimized.Select(p => p.Parameter).ToList();
            var gradNorm = nn.utils.clip_grad_norm_(parameters, options.MaxGradNorm > 0 ? options.MaxGradNorm : double.PositiveInfinity);
            var learningRate = schedule.At(stepNumber);
            foreach (var group in optimizer.ParamGroups) group.LearningRate = learningRate;
            optimizer.step();
            optimizer.zero_grad();

            if (!ReferenceEquals(optimized, trainable))
            {
                using var noGrad = no_grad();
                for (var i = 0; i < trainable.Count; i++) trainable[i].Parameter.copy_(optimized[i].Parameter);
                context.Model.zero_grad();
            }
            return (loss, labelled > 0 ? (double)correct / labelled : double.NaN, tokens, gradNorm, learningRate, preference);
        }

        /// <summary>A batch unit: an example's row, or a pair's two rows under DPO.</summary>
        private int Units => beta is null ? trainRows.Count : trainRows.Count / 2;

        private List<TrainingRow> PairRows(IReadOnlyList<TokenizedExample> examples, string what) =>
            PreferenceRows.Build(examples, options.MaxSequenceLength, what);

        /// <summary>
        /// DPO loss of <paramref name="rows"/> (chosen rows, then the rejected rows of the same pairs) against the
        /// reference log-probabilities of those rows. <paramref name="correct"/> counts argmax hits on the chosen answers.
        /// </summary>
        private DpoLoss PairLoss(IReadOnlyList<TrainingRow> rows, float[] references, out long correct, out long chosenTargets)
        {
            var pairs = rows.Count / 2;
            var (inputIds, labels) = Collate(rows);
            var logits = context.Model.forward(inputIds);
            using (no_grad())
                correct = logits.narrow(0, 0, pairs).argmax(-1).eq(labels.narrow(0, 0, pairs))
                    .logical_and(labels.narrow(0, 0, pairs).ne(TrainingRow.IgnoreIndex)).sum().ToInt64();
            chosenTargets = rows.Take(pairs).Sum(r => r.TargetCount);
            var policy = DpoObjective.SequenceLogProbs(logits, labels);
            var reference = tensor(rows.Select(r => references[r.Index]).ToArray()).to(context.Device);
            return DpoObjective.Loss(policy.narrow(0, 0, pairs), policy.narrow(0, pairs, pairs),
                reference.narrow(0, 0, pairs), reference.narrow(0, pairs, pairs), beta!.Value);
        }

        /// <summary>Summed answer log-probability of each row under the current (starting) weights, in eval mode and no_grad.</summary>
        private float[] ReferenceLogProbs(IReadOnlyList<TrainingRow> rows)
        {
            var model = context.Model;
            model.eval();
            var result = new float[rows.Count];
            using (no_grad())
            {
                for (var start = 0; start < rows.Count; start += options.BatchSize)
                {
                    using var scope = NewDisposeScope();
                    var chunk = rows.Skip(start).Take(options.BatchSize).ToList();
                    var (inputIds, labels) = Collate(chunk);
                    DpoObjective.SequenceLogProbs(model.forward(inputIds), labels).to(ScalarType.Float32).cpu().data<float>().CopyTo(result, start);
                }
            }
            model.train();
            return result;
        }

        /// <summary>
        /// Sum of next-token cross-entropy over labelled positions (fp32 even when the model runs in bf16), each times
        /// its weight when <paramref name="weights"/> are given (ignored positions weigh 0). <paramref name="correct"/>
        /// counts the labelled positions whose argmax prediction is the label (unweighted: token accuracy).
        /// </summary>
        private Tensor TokenLossSum(Tensor inputIds, Tensor labels, out long correct, Tensor? weights = null)
        {
            var (logits, targets, targetWeights) = context.Model is DecoderLM decoder
                ? LabelledLogits(decoder, inputIds, labels, weights)
                : (context.Model.forward(inputIds), labels, weights);
            using (no_grad())
                correct = logits.argmax(-1).eq(targets).logical_and(targets.ne(TrainingRow.IgnoreIndex)).sum().ToInt64();
            if (logits.dtype != ScalarType.Float32) logits = logits.to(ScalarType.Float32);
            var vocabulary = logits.shape[^1];
            var reduction = targetWeights is null ? nn.Reduction.Sum : nn.Reduction.None;
            var loss = nn.functional.cross_entropy(logits.reshape(-1, vocabulary), targets.reshape(-1),
                ignore_index: TrainingRow.IgnoreIndex, reduction: reduction);
            return targetWeights is null ? loss : (loss * targetWeights.reshape(-1)).sum();
        }

        /// <summary>
        /// LM-head logits [L, V] of the L labelled positions only, with their labels and weights. Prompts and padding
        /// are most of an SFT batch (60-80 % of the bootstrap build's positions), and the head with its loss is about a
        /// fifth of a step at a 4,096-token vocabulary.
        /// </summary>
        private static (Tensor Logits, Tensor Targets, Tensor? Weights) LabelledLogits(DecoderLM decoder, Tensor inputIds, Tensor labels, Tensor? weights)
        {
            var flatLabels = labels.reshape(-1);
            var positions = flatLabels.ne(TrainingRow.IgnoreIndex).nonzero().squeeze(-1);
            var hidden = decoder.Forward(inputIds, new DecoderForwardOptions { Logits = LogitsMode.None }).LastHiddenState;
            var selected = hidden.reshape(-1, hidden.shape[^1]).index_select(0, positions);
            return (decoder.VocabularyLogits(selected), flatLabels.index_select(0, positions), weights?.reshape(-1).index_select(0, positions));
        }

        private Tensor CollateWeights(IReadOnlyList<TrainingRow> rows, long width)
        {
            var weights = new float[rows.Count * width];
            for (var r = 0; r < rows.Count; r++)
                rows[r].Weights.CopyTo(weights, r * width);
            return tensor(weights, [rows.Count, width]).to(context.Device);
        }

        private (Tensor InputIds, Tensor Labels) Collate(IReadOnlyList<TrainingRow> rows)
        {
            var width = rows.Max(r => r.Length);
            var ids = new long[rows.Count * width];
            var labels = new long[rows.Count * width];
            Array.Fill(ids, options.PadTokenId);
            Array.Fill(labels, TrainingRow.IgnoreIndex);
            for (var r = 0; r < rows.Count; r++)
            {
                for (var t = 0; t < rows[r].Length; t++)
                {
                    ids[r * width + t] = rows[r].InputIds[t];
                    labels[r * width + t] = rows[r].Labels[t];
                }
            }
            long[] shape = [rows.Count, width];
            return (tensor(ids, shape).to(context.Device), tensor(labels, shape).to(context.Device));
        }

        private List<TrainingRow> MicroBatchRows(int epoch, int microBatch)
        {
            if (epochOrder.Epoch != epoch) epochOrder = (epoch, DataOrder.Permutation(Units, options.Seed, epoch));
            var units = epochOrder.Order[dataSchedule.MicroBatch(microBatch)];
            if (beta is null) return [.. units.Select(i => trainRows[i])];
            return [.. units.Select(i => trainRows[2 * i]), .. units.Select(i => trainRows[2 * i + 1])];
        }

        private void Evaluate()
        {
            var model = context.Model;
            model.eval();
            var lossSum = 0.0;
            var targets = 0L;
            var correct = 0L;
            if (beta is not null)
            {
                EvaluatePairs();
                return;
            }
            using (no_grad())
            {
                foreach (var rows in validationRows.Chunk(options.BatchSize))
                {
                    using var scope = NewDisposeScope();
                    var (inputIds, labels) = Collate(rows);
                    lossSum += TokenLossSum(inputIds, labels, out var batchCorrect).ToDouble();
                    correct += batchCorrect;
                    targets += rows.Sum(r => r.TargetCount);
                }
            }
            model.train();
            lastValidationLoss = lossSum / targets;
            lastValidationAccuracy = (double)correct / targets;
            lastEvaluatedStep = step;
            validations.Add(new ValidationPoint(step, lastValidationLoss.Value, lastValidationAccuracy.Value));
            trainer.observer.OnEvaluation(new EvaluationResult(step, lastValidationLoss.Value, targets, lastValidationAccuracy.Value));
        }

        /// <summary>Held-back pairs: mean DPO loss as the validation loss, reward accuracy beside it.</summary>
        private void EvaluatePairs()
        {
            var model = context.Model;
            double lossSum = 0, accuracySum = 0;
            long correct = 0, targets = 0;
            var pairCount = validationRows.Count / 2;
            using (no_grad())
            {
                for (var start = 0; start < pairCount; start += options.BatchSize)
                {
                    using var scope = NewDisposeScope();
                    var pairs = Math.Min(options.BatchSize, pairCount - start);
                    List<TrainingRow> rows = [.. Enumerable.Range(start, pairs).Select(i => validationRows[2 * i]),
                        .. Enumerable.Range(start, pairs).Select(i => validationRows[2 * i + 1])];
                    var dpo = PairLoss(rows, validationReferenceLogProbs, out var batchCorrect, out var batchTargets);
                    lossSum += dpo.Loss.ToDouble() * pairs;
                    accuracySum += dpo.RewardAccuracy * pairs;
                    correct += batchCorrect;
                    targets += batchTargets;
                }
            }
            model.train();
            lastValidationLoss = lossSum / pairCount;
            lastValidationAccuracy = (double)correct / targets;
            lastValidationRewardAccuracy = accuracySum / pairCount;
            lastEvaluatedStep = step;
            validations.Add(new ValidationPoint(step, lastValidationLoss.Value, lastValidationAccuracy.Value) { RewardAccuracy = lastValidationRewardAccuracy });
            trainer.observer.OnEvaluation(new EvaluationResult(step, lastValidationLoss.Value, targets, lastValidationAccuracy.Value)
            {
                RewardAccuracy = lastValidationRewardAccuracy,
            });
        }

        private string WriteCheckpoint(bool endOfEpoch = false)
        {
            if (string.IsNullOrWhiteSpace(options.CheckpointDirectory))
                throw new InvalidOperationException("Pausing or checkpointing needs SftTrainerOptions.CheckpointDirectory.");
            var directory = Path.Combine(options.CheckpointDirectory, $"step-{step:D6}");
            using var rng = torch.random.get_rng_state();
            var state = new TrainerState
            {
                Step = step,
                TotalSteps = totalSteps,
                Epoch = EpochOf(step + 1),
                StepsPerEpoch = stepsPerEpoch,
                MicroBatchCursor = step % stepsPerEpoch * options.GradientAccumulationSteps,
                Seed = options.Seed,
                DataFingerprint = dataFingerprint,
                BaseModel = options.BaseModelReference,
                Precision = context.Precision,
                PeakLearningRate = schedule.PeakLearningRate,
                WarmupSteps = schedule.WarmupSteps,
                MinLearningRateRatio = schedule.MinRatio,
                TokensSeen = tokensSeen,
                TorchCpuRngState = Convert.ToBase64String(rng.data<byte>().ToArray()),
                TrainLosses = [.. allLosses],
                TrainTokenAccuracies = [.. allAccuracies],
                LastValidationLoss = lastValidationLoss,
                LastValidationTokenAccuracy = lastValidationAccuracy,
                Validations = [.. validations],
                TrainableParameters = [.. trainable.Select(p => p.Name)],
                RewardMargins = [.. allMargins],
                RewardAccuracies = [.. allRewardAccuracies],
                ReferenceLogProbs = [.. referenceLogProbs],
                ValidationReferenceLogProbs = [.. validationReferenceLogProbs],
                CreatedAt = options.Clock.GetUtcNow(),
            };
            TrainingCheckpoint.Write(directory, state, optimized, optimizer);
            trainer.observer.OnCheckpoint(new CheckpointWritten(step, directory, allLosses.LastOrDefault(double.NaN), lastValidationLoss,
                allAccuracies.LastOrDefault(double.NaN), lastValidationAccuracy, endOfEpoch)
            {
                RewardMargin = beta is null ? null : allMargins.LastOrDefault(double.NaN),
                RewardAccuracy = beta is null ? null : allRewardAccuracies.LastOrDefault(double.NaN),
                ValidationRewardAccuracy = lastValidationRewardAccuracy,
            });
            return directory;
        }

        private void Restore(string directory)
        {
            var state = TrainingCheckpoint.ReadState(directory);
            void Check(bool same, string what, object stored, object current)
            {
                if (!same)
                    throw new InvalidOperationException($"Cannot resume from {directory}: {what} differs (checkpoint: {stored}, this run: {current}).");
            }
            Check(state.DataFingerprint == dataFingerprint, "training data or batching options", state.DataFingerprint, dataFingerprint);
            Check(state.BaseModel == options.BaseModelReference, "base model", state.BaseModel, options.BaseModelReference);
            Check(state.Precision == context.Precision, "precision", state.Precision, context.Precision);
            Check(state.TotalSteps == totalSteps, "total steps", state.TotalSteps, totalSteps);
            Check(state.TrainableParameters.SequenceEqual(trainable.Select(p => p.Name)), "trainable parameters",
                string.Join(",", state.TrainableParameters), string.Join(",", trainable.Select(p => p.Name)));

            TrainingCheckpoint.LoadTrainable(directory, optimized);
            if (!ReferenceEquals(optimized, trainable))
            {
                using var noGrad = no_grad();
                for (var i = 0; i < trainable.Count; i++) trainable[i].Parameter.copy_(optimized[i].Parameter);
            }
            TrainingCheckpoint.LoadOptimizer(directory, optimizer);
            using (var rng = tensor(Convert.FromBase64String(state.TorchCpuRngState)))
                torch.random.set_rng_state(rng);

            step = state.Step;
            tokensSeen = state.TokensSeen;
            lastValidationLoss = state.LastValidationLoss;
            lastValidationAccuracy = state.LastValidationTokenAccuracy;
            allLosses.AddRange(state.TrainLosses);
            // Checkpoints from before accuracies were recorded have none: unknown, not zero.
            allAccuracies.AddRange(Enumerable.Repeat(double.NaN, Math.Max(0, state.TrainLosses.Count - state.TrainTokenAccuracies.Count)));
            allAccuracies.AddRange(state.TrainTokenAccuracies);
            validations.AddRange(state.Validations);
            if (validations.Count > 0 && validations[^1].Step == step) lastEvaluatedStep = step;
            if (beta is not null)
            {
                Check(state.ReferenceLogProbs.Count == trainRows.Count && state.ValidationReferenceLogProbs.Count == validationRows.Count,
                    "reference log-probabilities", state.ReferenceLogProbs.Count, trainRows.Count);
                referenceLogProbs = [.. state.ReferenceLogProbs];
                validationReferenceLogProbs = [.. state.ValidationReferenceLogProbs];
                allMargins.AddRange(state.RewardMargins);
                allRewardAccuracies.AddRange(state.RewardAccuracies);
                lastValidationRewardAccuracy = validations.LastOrDefault()?.RewardAccuracy;
            }
        }

        private List<StepMetrics> MetricsHistory()
        {
            var validated = validations.GroupBy(v => v.Step).ToDictionary(g => g.Key, g => g.Last());
            return
            [
                .. allLosses.Select((loss, i) =>
                {
                    var validation = validated.GetValueOrDefault(i + 1);
                    return new StepMetrics(i + 1, loss, allAccuracies[i], validation?.Loss, validation?.TokenAccuracy)
                    {
                        RewardMargin = i < allMargins.Count ? allMargins[i] : null,
                        RewardAccuracy = i < allRewardAccuracies.Count ? allRewardAccuracies[i] : null,
                        ValidationRewardAccuracy = validation?.RewardAccuracy,
                    };
                }),
            ];
        }

        private int EpochOf(int stepNumber) => Math.Min((stepNumber - 1) / stepsPerEpoch + 1, options.Epochs);

        private static List<(string Name, Parameter Parameter)> TrainableOf(nn.Module model) =>
            [.. model.named_parameters().Where(p => p.parameter.requires_grad).Select(p => (p.name, p.parameter))];

        /// <summary>AdamW over trainable parameters only; no weight decay on vectors (biases, norm weights).</summary>
        private static AdamW BuildOptimizer(IReadOnlyList<(string Name, Parameter Parameter)> parameters, SftTrainerOptions options)
        {
            var groups = parameters
                .GroupBy(p => p.Parameter.dim() >= 2)
                .OrderByDescending(g => g.Key)
                .Select(g => new AdamW.ParamGroup(g.Select(p => p.Parameter), options.LearningRate, options.Beta1, options.Beta2,
                    options.Epsilon, g.Key ? options.WeightDecay : 0.0, amsgrad: false, maximize: false))
                .ToList();
            return new AdamW(groups, options.LearningRate, options.Beta1, options.Beta2, options.Epsilon, options.WeightDecay, amsgrad: false, maximize: false);
        }

        private static string Fingerprint(IReadOnlyList<TrainingRow> rows, SftTrainerOptions options, bool weighted, double? beta)
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes(
                $"{options.BatchSize}|{options.GradientAccumulationSteps}|{options.MaxSequenceLength}|{options.Packing}|{options.Seed}|{options.Epochs}|{options.MaxSteps}"
                + (options.LossAveraging == LossAveraging.PerToken ? "" : $"|{options.LossAveraging}")
                + (beta is { } b ? $"|dpo:{b.ToString(System.Globalization.CultureInfo.InvariantCulture)}" : "")));
            foreach (var row in rows)
            {
                hash.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(row.InputIds.AsSpan()));
                hash.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(row.Labels.AsSpan()));
                if (weighted) hash.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(row.Weights.AsSpan()));
            }
            return Convert.ToHexStringLower(hash.GetHashAndReset());
        }

        public void Dispose()
        {
            optimizer.Dispose();
            if (!ReferenceEquals(optimized, trainable))
                foreach (var master in optimized) master.Parameter.Dispose();
        }
    }

    private sealed class NullObserver : ITrainingObserver;
}
