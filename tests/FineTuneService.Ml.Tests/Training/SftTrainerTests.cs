using FineTuneService.Datasets.Sft;
using FineTuneService.Datasets;
using FineTuneService.Ml.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Tests.Training;

[Collection(TorchGlobalStateCollection.Name)]
public class SftTrainerTests
{
    [Fact]
    public void Loss_falls_when_overfitting_a_tiny_dataset()
    {
        using var model = TrainerTestData.Decoder();
        var options = TrainerTestData.Options() with { Epochs = 40 };

        var result = new SftTrainer(model, options).Train(TrainerTestData.ReverseTask(8));

        Assert.Equal(TrainingOutcome.Completed, result.Outcome);
        Assert.Equal(80, result.StepsDone);
        Assert.True(result.TrainLosses[^1] < 0.5 * result.TrainLosses[0],
            $"loss went from {result.TrainLosses[0]:F3} to {result.TrainLosses[^1]:F3}");
    }

    [Fact]
    public void First_step_loss_is_the_mean_next_token_cross_entropy_over_masked_positions()
    {
        var examples = TrainerTestData.ReverseTask(4);
        using var model = TrainerTestData.Decoder();
        var expected = ManualMaskedLoss(model, examples);

        var result = new SftTrainer(model, TrainerTestData.Options() with { MaxSteps = 1 }).Train(examples);

        Assert.Equal(expected, result.TrainLosses[0], 5);
    }

    [Fact]
    public void Per_example_loss_is_the_mean_over_examples_of_each_examples_mean_cross_entropy()
    {
        // Answers of 4 to 7 tokens: per-token and per-example averages differ.
        var examples = TrainerTestData.ReverseTask(4, minLength: 3, maxLength: 6);
        using var model = TrainerTestData.Decoder();
        var perExample = ManualMaskedLoss(model, examples, perExample: true);
        var perToken = ManualMaskedLoss(model, examples);

        var result = new SftTrainer(model, TrainerTestData.Options() with { MaxSteps = 1, LossAveraging = LossAveraging.PerExample }).Train(examples);

        Assert.Equal(perExample, result.TrainLosses[0], 5);
        Assert.NotEqual(perToken, perExample, 3);
    }

    [Fact]
    public void An_example_weighted_two_trains_like_two_copies_of_it()
    {
        var examples = TrainerTestData.ReverseTask(4, minLength: 3, maxLength: 6);
        IReadOnlyList<double> Losses(IReadOnlyList<TokenizedExample> batch)
        {
            using var model = TrainerTestData.Decoder();
            var options = TrainerTestData.Options() with { BatchSize = batch.Count, Epochs = 3 };
            return new SftTrainer(model, options).Train(batch).TrainLosses;
        }

        var weighted = Losses([examples[0] with { LossWeight = 2f }, .. examples[1..]]);
        var duplicated = Losses([examples[0], examples[0], .. examples[1..]]);
        var plain = Losses(examples);

        Assert.Equal(duplicated.Count, weighted.Count);
        for (var i = 0; i < weighted.Count; i++) Assert.Equal(duplicated[i], weighted[i], 4);
        Assert.NotEqual(plain[0], weighted[0], 4);
    }

    [Fact]
    public void Per_example_loss_works_with_packing_and_gradient_accumulation()
    {
        var examples = TrainerTestData.ReverseTask(8);
        IReadOnlyList<double> Losses(int batch, int accumulation)
        {
            using var model = TrainerTestData.Decoder();
            var options = TrainerTestData.Options() with
            {
                BatchSize = batch, GradientAccumulationSteps = accumulation, Epochs = 3, Packing = true, MaxSequenceLength = 16,
                LossAveraging = LossAveraging.PerExample,
            };
            return new SftTrainer(model, options).Train(examples).TrainLosses;
        }

        var large = Losses(4, 1);
        var accumulated = Losses(2, 2);

        Assert.Equal(large.Count, accumulated.Count);
        for (var i = 0; i < large.Count; i++) Assert.Equal(large[i], accumulated[i], 4);
        Assert.True(large[^1] < large[0]);
    }

    [Fact]
    public void Tokens_outside_the_loss_mask_do_not_change_the_loss()
    {
        double FirstLoss(int trailingToken)
        {
            using var model = TrainerTestData.Decoder();
            var examples = TrainerTestData.ReverseTask(6, trailing: trailingToken);
            return new SftTrainer(model, TrainerTestData.Options() with { MaxSteps = 1 }).Train(examples).TrainLosses[0];
        }
        double FirstLossWithMaskedLastToken(int lastToken)
        {
            using var model = TrainerTestData.Decoder();
            var examples = TrainerTestData.ReverseTask(6, trailing: lastToken)
                .Select(e => e with { LossMask = [.. e.LossMask[..^1], true] })
                .ToList();
            return new SftTrainer(model, TrainerTestData.Options() with { MaxSteps = 1 }).Train(examples).TrainLosses[0];
        }

        // A trailing token that is not in the mask is only ever a label, so its value must not matter...
        Assert.Equal(FirstLoss(5), FirstLoss(29));
        // ...while the same token inside the mask does count.
        Assert.NotEqual(FirstLossWithMaskedLastToken(5), FirstLossWithMaskedLastToken(29));
    }

    [Fact]
    public void Gradient_accumulation_matches_one_large_batch()
    {
        var examples = TrainerTestData.ReverseTask(8);
        IReadOnlyList<double> Losses(int batch, int accumulation)
        {
            using var model = TrainerTestData.Decoder();
            var options = TrainerTestData.Options() with { BatchSize = batch, GradientAccumulationSteps = accumulation, Epochs = 3 };
            return new SftTrainer(model, options).Train(examples).TrainLosses;
        }

        var large = Losses(4, 1);
        var accumulated = Losses(2, 2);

        Assert.Equal(large.Count, accumulated.Count);
        for (var i = 0; i < large.Count; i++) Assert.Equal(large[i], accumulated[i], 4);
    }

    [Fact]
    public void Cancellation_stops_within_one_step()
    {
        using var model = TrainerTestData.Decoder();
        using var cancellation = new CancellationTokenSource();
        var observer = new DelegateObserver(progress: p => { if (p.Step == 3) cancellation.Cancel(); });

        var result = new SftTrainer(model, TrainerTestData.Options() with { Epochs = 10 }, observer: observer)
            .Train(TrainerTestData.ReverseTask(8), cancellationToken: cancellation.Token);

        Assert.Equal(TrainingOutcome.Cancelled, result.Outcome);
        Assert.Equal(3, result.StepsDone);
        Assert.Equal(3, result.TrainLosses.Count);
    }

    [Fact]
    public void Pausing_without_a_checkpoint_directory_is_refused_before_training()
    {
        using var model = TrainerTestData.Decoder();
        var before = TrainerTestData.Snapshot(model);
        using var pause = new CancellationTokenSource();

        var error = Assert.Throws<ArgumentException>(() =>
            new SftTrainer(model, TrainerTestData.Options()).Train(TrainerTestData.ReverseTask(8), pauseToken: pause.Token));

        Assert.Contains("CheckpointDirectory", error.Message);
        Assert.Equal(before["lm_head.weight"], TrainerTestData.Snapshot(model)["lm_head.weight"]);
    }

    [Fact]
    public void Frozen_parameters_stay_bit_identical_and_are_left_out_of_the_optimizer()
    {
        using var model = TrainerTestData.Decoder();
        var before = TrainerTestData.Snapshot(model);
        string[] frozen = ["model.embed_tokens.weight", "lm_head.weight", "model.layers.1.mlp.down_proj.weight"];
        IReadOnlyList<string> trainable = [];
        var freeze = new DelegateStrategy(
            before: c => { foreach (var (name, p) in c.Model.named_parameters()) if (frozen.Contains(name)) p.requires_grad = false; },
            onGradients: (c, _) => trainable = [.. c.TrainableParameters.Select(p => p.Name)]);

        new SftTrainer(model, TrainerTestData.Options() with { WeightDecay = 0.1 }, [freeze]).Train(TrainerTestData.ReverseTask(8));

        var after = TrainerTestData.Snapshot(model);
        foreach (var name in frozen) Assert.Equal(before[name], after[name]);
        Assert.DoesNotContain(trainable, frozen.Contains);
        Assert.NotEqual(before["model.layers.0.self_attn.q_proj.weight"], after["model.layers.0.self_attn.q_proj.weight"]);
    }

    [Fact]
    public void A_gradient_zeroed_in_OnGradients_leaves_its_parameter_unchanged()
    {
        using var model = TrainerTestData.Decoder();
        var before = TrainerTestData.Snapshot(model);
        var calls = new List<int>();
        var zeroOutput = new DelegateStrategy(onGradients: (context, step) =>
        {
            calls.Add(step);
            var parameter = context.TrainableParameters.Single(p => p.Name == "model.layers.0.self_attn.o_proj.weight").Parameter;
            Assert.NotNull(parameter.grad);
            parameter.grad!.zero_();
        });

        var result = new SftTrainer(model, TrainerTestData.Options(), [zeroOutput]).Train(TrainerTestData.ReverseTask(8));

        var after = TrainerTestData.Snapshot(model);
        Assert.Equal(Enumerable.Range(1, result.StepsDone), calls);
        Assert.Equal(before["model.layers.0.self_attn.o_proj.weight"], after["model.layers.0.self_attn.o_proj.weight"]);
        Assert.NotEqual(before["model.layers.1.self_attn.o_proj.weight"], after["model.layers.1.self_attn.o_proj.weight"]);
    }

    [Fact]
    public void Strategies_run_in_order_and_AfterTraining_only_when_completed()
    {
        var log = new List<string>();
        ITrainingStrategy Named(string name) => new DelegateStrategy(
            before: _ => log.Add($"{name}.before"),
            onGradients: (_, step) => { if (step == 1) log.Add($"{name}.grad"); },
            after: _ => log.Add($"{name}.after"));

        using (var model = TrainerTestData.Decoder())
            new SftTrainer(model, TrainerTestData.Options() with { MaxSteps = 2 }, [Named("a"), Named("b")]).Train(TrainerTestData.ReverseTask(8));
        Assert.Equal(["a.before", "b.before", "a.grad", "b.grad", "a.after", "b.after"], log);

        log.Clear();
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        using (var model = TrainerTestData.Decoder())
            new SftTrainer(model, TrainerTestData.Options(), [Named("a")]).Train(TrainerTestData.ReverseTask(8), cancellationToken: cancelled.Token);
        Assert.Equal(["a.before"], log);
    }

    [Fact]
    public void Progress_and_validation_are_reported()
    {
        using var model = TrainerTestData.Decoder();
        var progress = new List<TrainingProgress>();
        var evaluations = new List<EvaluationResult>();
        var observer = new DelegateObserver(progress.Add, evaluations.Add);
        var options = TrainerTestData.Options() with { Epochs = 3, EvalEverySteps = 2 };

        var result = new SftTrainer(model, options, observer: observer)
            .Train(TrainerTestData.ReverseTask(8), TrainerTestData.ReverseTask(4, seed: 99));

        Assert.Equal(Enumerable.Range(1, 6), progress.Select(p => p.Step));
        Assert.All(progress, p => Assert.Equal(6, p.TotalSteps));
        Assert.Equal([1, 1, 2, 2, 3, 3], progress.Select(p => p.Epoch));
        Assert.All(progress, p => Assert.True(p.TokensPerSecond > 0 && p.LearningRate > 0 && double.IsFinite(p.TrainLoss)));
        Assert.Equal(progress.Select(p => p.TrainLoss), result.TrainLosses);
        Assert.Equal([2, 4, 6], evaluations.Select(e => e.Step));
        Assert.Equal(evaluations[^1].ValidationLoss, result.FinalValidationLoss);
        Assert.Equal(progress[^1].TokensSeen, result.TokensSeen);
    }

    [Fact]
    public void The_labelled_positions_only_head_trains_like_full_logits()
    {
        // A DecoderLM gets the LM head on labelled positions only; any other module is trained on its full logits.
        var examples = TrainerTestData.ReverseTask(8, minLength: 3, maxLength: 6);
        var options = TrainerTestData.Options() with { Packing = true, BatchSize = 2, Epochs = 3, LossAveraging = LossAveraging.PerExample };
        using var direct = TrainerTestData.Decoder();
        using var wrapped = new FullLogitsOnly(TrainerTestData.Decoder());

        var headOnLabels = new SftTrainer(direct, options).Train(examples, examples);
        var fullLogits = new SftTrainer(wrapped, options).Train(examples, examples);

        Assert.Equal(fullLogits.TrainLosses.Count, headOnLabels.TrainLosses.Count);
        for (var i = 0; i < fullLogits.TrainLosses.Count; i++) Assert.Equal(fullLogits.TrainLosses[i], headOnLabels.TrainLosses[i], 4);
        Assert.Equal(fullLogits.FinalValidationLoss!.Value, headOnLabels.FinalValidationLoss!.Value, 4);
        var trained = TrainerTestData.Snapshot(wrapped);
        foreach (var (name, values) in TrainerTestData.Snapshot(direct))
        {
            var largest = values.Zip(trained["decoder." + name], (a, b) => Math.Abs(a - b)).Max();
            Assert.True(largest < 1e-4, $"{name} differs by {largest}");
        }
    }

    private sealed class FullLogitsOnly : nn.Module<Tensor, Tensor>
    {
        private readonly FineTuneService.Ml.Models.DecoderLM decoder;

        public FullLogitsOnly(FineTuneService.Ml.Models.DecoderLM decoder) : base(nameof(FullLogitsOnly))
        {
            this.decoder = decoder;
            RegisterComponents();
        }

        public override Tensor forward(Tensor inputIds) => decoder.forward(inputIds);
    }

    [Fact]
    public void Packed_rows_train()
    {
        using var model = TrainerTestData.Decoder();
        var options = TrainerTestData.Options() with { Packing = true, BatchSize = 2, Epochs = 30 };

        var result = new SftTrainer(model, options).Train(TrainerTestData.ReverseTask(12));

        Assert.True(result.TrainLosses[^1] < 0.6 * result.TrainLosses[0]);
    }

    [Fact]
    public void BFloat16_keeps_fp32_master_weights_and_trains()
    {
        using var model = TrainerTestData.Decoder();
        var options = TrainerTestData.Options() with { Precision = TrainingPrecision.BFloat16, Epochs = 30 };

        var result = new SftTrainer(model, options).Train(TrainerTestData.ReverseTask(8));

        Assert.All(model.parameters(), p => Assert.Equal(ScalarType.BFloat16, p.dtype));
        Assert.True(result.TrainLosses[^1] < 0.6 * result.TrainLosses[0],
            $"loss went from {result.TrainLosses[0]:F3} to {result.TrainLosses[^1]:F3}");
    }

    [Fact]
    public void BFloat16_mixed_precision_follows_the_float32_loss_curve()
    {
        var examples = TrainerTestData.ReverseTask(8);
        var options = TrainerTestData.Options() with { Epochs = 15 };
        using var full = TrainerTestData.Decoder();
        using var mixed = TrainerTestData.Decoder();

        var float32 = new SftTrainer(full, options with { Precision = TrainingPrecision.Float32 }).Train(examples).TrainLosses;
        var bfloat16 = new SftTrainer(mixed, options with { Precision = TrainingPrecision.BFloat16 }).Train(examples).TrainLosses;

        Assert.Equal(float32.Count, bfloat16.Count);
        var worst = float32.Zip(bfloat16, (f, b) => Math.Abs(f - b) / f).Max();
        Assert.True(worst < 0.1, $"bf16 loss strayed {worst:P1} from fp32 (fp32 {float32[^1]:F3}, bf16 {bfloat16[^1]:F3} at the end)");
        Assert.True(bfloat16[^1] < 0.6 * bfloat16[0]);
    }

    /// <summary>Mean masked cross-entropy over all tokens, or (<paramref name="perExample"/>) of each example's mean.</summary>
    private static double ManualMaskedLoss(nn.Module<Tensor, Tensor> model, IReadOnlyList<FineTuneService.Datasets.TokenizedExample> examples,
        bool perExample = false)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        model.eval();
        var total = 0.0;
        var count = 0;
        var exampleMeans = new List<double>();
        foreach (var example in examples)
        {
            var logits = model.forward(tensor(example.InputIds.Select(i => (long)i).ToArray()).unsqueeze(0));
            var logProbs = nn.functional.log_softmax(logits[0], dim: -1);
            var exampleTotal = 0.0;
            var exampleCount = 0;
            for (var t = 0; t + 1 < example.Length; t++)
            {
                if (!example.LossMask[t + 1]) continue;
                exampleTotal -= logProbs[t, example.InputIds[t + 1]].ToDouble();
                exampleCount++;
            }
            total += exampleTotal;
            count += exampleCount;
            exampleMeans.Add(exampleTotal / exampleCount);
        }
        model.train();
        return perExample ? exampleMeans.Average() : total / count;
    }
}
