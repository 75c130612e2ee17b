using FineTuneService.Ml.Models;
using FineTuneService.Ml.Tests.Models;
using FineTuneService.Ml.Training.Preference;
using TorchSharp;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Tests.Training;

[Collection(TorchGlobalStateCollection.Name)]
public sealed class DpoObjectiveTests
{
    private const long Ignore = -100;

    [Fact]
    public void Sequence_log_probs_sum_the_labelled_tokens_only()
    {
        using var scope = NewDisposeScope();
        var logits = randn(2, 3, 5, generator: new Generator(7));
        var labels = tensor(new long[] { 4, Ignore, 1, Ignore, Ignore, 3 }).view(2, 3);

        var summed = DpoObjective.SequenceLogProbs(logits, labels);

        var logProbs = nn.functional.log_softmax(logits, -1);
        var expected = new[]
        {
            logProbs[0, 0, 4].ToDouble() + logProbs[0, 2, 1].ToDouble(),
            logProbs[1, 2, 3].ToDouble(),
        };
        Assert.Equal(expected[0], summed[0].ToDouble(), 5);
        Assert.Equal(expected[1], summed[1].ToDouble(), 5);
    }

    [Fact]
    public void A_policy_equal_to_its_reference_has_loss_log_2_and_no_margin()
    {
        using var scope = NewDisposeScope();
        var chosen = tensor(new[] { -3.0f, -5.0f });
        var rejected = tensor(new[] { -4.0f, -2.0f });

        var dpo = DpoObjective.Loss(chosen, rejected, chosen, rejected, beta: 0.5);

        Assert.Equal(Math.Log(2), dpo.Loss.ToDouble(), 6);
        Assert.Equal(0, dpo.RewardMargin, 6);
        Assert.Equal(0, dpo.RewardAccuracy);
    }

    [Fact]
    public void The_margin_is_beta_times_the_difference_of_log_ratios()
    {
        using var scope = NewDisposeScope();
        // Pair 0: chosen +2 over the reference, rejected -1: margin beta * 3. Pair 1: chosen -1, rejected +1: beta * -2.
        var dpo = DpoObjective.Loss(tensor(new[] { -1.0f, -6.0f }), tensor(new[] { -5.0f, -1.0f }),
            tensor(new[] { -3.0f, -5.0f }), tensor(new[] { -4.0f, -2.0f }), beta: 0.1);

        Assert.Equal((0.3 - 0.2) / 2, dpo.RewardMargin, 5);
        Assert.Equal(0.5, dpo.RewardAccuracy);
        var expectedLoss = -(Math.Log(1 / (1 + Math.Exp(-0.3))) + Math.Log(1 / (1 + Math.Exp(0.2)))) / 2;
        Assert.Equal(expectedLoss, dpo.Loss.ToDouble(), 5);
    }

    [Fact]
    public void Training_on_the_loss_raises_the_preferred_answer_against_a_frozen_reference()
    {
        using var policy = DecoderLM.CreateRandom(TinyModels.Llama(), seed: 11);
        using var reference = DecoderLM.CreateRandom(TinyModels.Llama(), seed: 11);
        foreach (var parameter in reference.parameters()) parameter.requires_grad = false;
        using var optimizer = optim.AdamW(policy.parameters(), lr: 1e-2);

        // Two prompts [5, 6, 7] and [8, 9, 10]; the preferred answer is [20, 21], the other [30, 31]. Labels mark the answer.
        using var ids = tensor(new long[] { 5, 6, 7, 20, 21, 8, 9, 10, 20, 21, 5, 6, 7, 30, 31, 8, 9, 10, 30, 31 }).view(4, 5);
        using var labels = tensor(new long[]
        {
            Ignore, Ignore, 20, 21, Ignore, Ignore, Ignore, 20, 21, Ignore,
            Ignore, Ignore, 30, 31, Ignore, Ignore, Ignore, 30, 31, Ignore,
        }).view(4, 5);

        Tensor referenceLogProbs;
        using (no_grad()) referenceLogProbs = DpoObjective.SequenceLogProbs(reference.forward(ids), labels);
        using var _ = referenceLogProbs;

        var first = Step();
        var last = first;
        for (var step = 0; step < 20; step++) last = Step();

        Assert.Equal(Math.Log(2), first.Loss, 4); // identical weights at the start
        Assert.True(last.Loss < first.Loss - 0.1, $"loss {first.Loss} -> {last.Loss}");
        Assert.True(last.RewardMargin > 0.1, $"margin {last.RewardMargin}");
        Assert.Equal(1.0, last.RewardAccuracy);

        (double Loss, double RewardMargin, double RewardAccuracy) Step()
        {
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            var logProbs = DpoObjective.SequenceLogProbs(policy.forward(ids), labels);
            var dpo = DpoObjective.Loss(logProbs[..2], logProbs[2..], referenceLogProbs[..2], referenceLogProbs[2..], beta: 0.5);
            dpo.Loss.backward();
            optimizer.step();
            return (dpo.Loss.ToDouble(), dpo.RewardMargin, dpo.RewardAccuracy);
        }
    }
}
