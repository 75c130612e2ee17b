using FineTuneService.Ml.Generation;
using FineTuneService.Ml.Inference;
using FineTuneService.Ml.Models;
using FineTuneService.Ml.Tests.Models;
using FineTuneService.Ml.Tests.Training;
using TorchSharp;

namespace FineTuneService.Ml.Tests.Inference;

public sealed class BatchDecoderTests
{
    private static readonly IReadOnlyList<int>[] Prompts = [[5, 9, 13, 7], [11, 3], [8, 30, 21], [6, 6, 6, 6, 6, 6, 6], [17]];

    private static SequenceOptions Greedy(int maxNewTokens) => new() { MaxNewTokens = maxNewTokens, StopTokenIds = new HashSet<int>() };

    /// <summary>
    /// Runs the decoder, adding prompt i before step joinAt[i] (the prompts of one step prefilled together); returns
    /// every sequence's tokens and finish reason.
    /// </summary>
    private static List<(List<int> Tokens, FinishReason Reason)> Decode(BatchDecoder decoder, IReadOnlyList<IReadOnlyList<int>> prompts,
        IReadOnlyList<int> joinAt, Func<int, SequenceOptions> options)
    {
        var results = prompts.Select(_ => (Tokens: new List<int>(), Reason: (FinishReason?)null)).ToArray();
        var ids = new Dictionary<long, int>();
        void Record(int index, DecodedToken token)
        {
            if (token.TokenId is { } id) results[index].Tokens.Add(id);
            if (token.Finished is { } reason) results[index].Reason = reason;
        }
        for (var step = 0; results.Any(r => r.Reason is null); step++)
        {
            var joining = Enumerable.Range(0, prompts.Count).Where(i => joinAt[i] == step).ToList();
            var firsts = decoder.AddRange(joining.Select(i => (prompts[i], options(i))).ToList());
            for (var j = 0; j < joining.Count; j++)
            {
                ids[firsts[j].SequenceId] = joining[j];
                Record(joining[j], firsts[j].First);
            }
            foreach (var token in decoder.Step()) Record(ids[token.SequenceId], token);
            Assert.True(step < 500, "the decoder never finished");
        }
        return results.Select(r => (r.Tokens, r.Reason!.Value)).ToList();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Sequences_joining_and_leaving_the_batch_decode_exactly_as_alone(bool qwen2)
    {
        using var model = DecoderLM.CreateRandom(qwen2 ? TinyModels.Qwen2() : TinyModels.Llama(), seed: 17);
        var limits = new[] { 12, 5, 9, 3, 14 };
        var alone = Prompts.Select((p, i) => new TextGenerator(model).Generate([p], new GenerationOptions { MaxNewTokens = limits[i], StopTokenIds = [] })[0]).ToList();

        using var decoder = new BatchDecoder(model);
        var batched = Decode(decoder, Prompts, joinAt: [0, 0, 2, 4, 11], i => Greedy(limits[i]));

        Assert.Equal(alone.Select(s => s.TokenIds), batched.Select(s => s.Tokens.ToArray()));
        Assert.All(batched, s => Assert.Equal(FinishReason.Length, s.Reason));
        Assert.Equal(0, decoder.Count);
    }

    [Fact]
    public void A_stop_token_ends_only_its_sequence_and_is_not_emitted()
    {
        using var model = DecoderLM.CreateRandom(TinyModels.Llama(), seed: 23);
        using var free = new BatchDecoder(model);
        var unstopped = Decode(free, Prompts, joinAt: [0, 0, 0, 0, 0], _ => Greedy(10));
        var stopToken = unstopped[0].Tokens[3];

        using var decoder = new BatchDecoder(model);
        var stopped = Decode(decoder, Prompts, joinAt: [0, 0, 0, 0, 0], i => i == 0 ? Greedy(10) with { StopTokenIds = new HashSet<int> { stopToken } } : Greedy(10));

        Assert.Equal(FinishReason.Stop, stopped[0].Reason);
        Assert.Equal(unstopped[0].Tokens.Take(unstopped[0].Tokens.IndexOf(stopToken)), stopped[0].Tokens);
        Assert.Equal(unstopped.Skip(1).Select(s => s.Tokens), stopped.Skip(1).Select(s => s.Tokens));
    }

    [Fact]
    public void A_seeded_sampled_sequence_does_not_depend_on_what_decodes_beside_it()
    {
        using var model = DecoderLM.CreateRandom(TinyModels.Qwen2(), seed: 31);
        SequenceOptions Sampled(long seed) => Greedy(16) with { Temperature = 1.3, TopP = 0.9, Seed = seed };

        using var alone = new BatchDecoder(model);
        var solo = Decode(alone, [Prompts[0]], joinAt: [0], _ => Sampled(4))[0].Tokens;
        using var crowded = new BatchDecoder(model);
        var beside = Decode(crowded, Prompts, joinAt: [3, 0, 1, 0, 5], i => i == 0 ? Sampled(4) : Sampled(100 + i))[0].Tokens;
        using var other = new BatchDecoder(model);
        var otherSeed = Decode(other, [Prompts[0]], joinAt: [0], _ => Sampled(5))[0].Tokens;

        Assert.Equal(solo, beside);
        Assert.NotEqual(solo, otherSeed);
    }

    [Fact]
    public void Rejects_a_prompt_that_does_not_fit_the_context_with_its_limit()
    {
        using var model = DecoderLM.CreateRandom(TinyModels.Llama(), seed: 1);
        using var decoder = new BatchDecoder(model);
        var tooLong = Enumerable.Repeat(5, model.Config.MaxPositionEmbeddings - 3).ToArray();

        Assert.Throws<ArgumentException>(() => decoder.Add(tooLong, Greedy(4)));
        Assert.Throws<ArgumentException>(() => decoder.Add([], Greedy(4)));
        Assert.Throws<ArgumentException>(() => decoder.Add([model.Config.VocabSize], Greedy(4)));
        Assert.Equal(0, decoder.Count);
    }

    [Fact]
    public void Removed_sequences_leave_the_batch_and_the_rest_decode_on()
    {
        using var model = DecoderLM.CreateRandom(TinyModels.Llama(), seed: 5);
        var alone = new TextGenerator(model).Generate([Prompts[1]], new GenerationOptions { MaxNewTokens = 8, StopTokenIds = [] })[0];
        using var decoder = new BatchDecoder(model);
        var (gone, _) = decoder.Add(Prompts[0], Greedy(8));
        var (kept, first) = decoder.Add(Prompts[1], Greedy(8));
        var tokens = new List<int> { first.TokenId!.Value };
        decoder.Step().Where(t => t.SequenceId == kept).ToList().ForEach(t => tokens.Add(t.TokenId!.Value));

        decoder.Remove(gone);
        Assert.Equal(1, decoder.Count);
        while (decoder.Count > 0) tokens.AddRange(decoder.Step().Select(t => t.TokenId!.Value));

        Assert.Equal(alone.TokenIds, tokens);
    }
}

[Collection(TorchGlobalStateCollection.Name)]
public sealed class BatchDecoderLeakTests
{
    [Fact]
    public void Live_tensor_count_does_not_grow_over_hundreds_of_steps_with_joins_and_leaves()
    {
        using var model = DecoderLM.CreateRandom(TinyModels.Llama(), seed: 3);
        using var decoder = new BatchDecoder(model);
        var random = new Random(7);
        var emptyAt = new List<(int Step, long Live)>();
        for (var step = 1; step <= 400; step++)
        {
            // Bursts of sampled and greedy sequences with their own limits, so the batch keeps changing and empties between bursts.
            if (step % 3 == 0 && step % 60 < 30 && decoder.Count < 6)
            {
                var prompt = Enumerable.Range(0, random.Next(1, 9)).Select(_ => random.Next(3, 48)).ToArray();
                decoder.Add(prompt, new SequenceOptions
                {
                    MaxNewTokens = random.Next(2, 20), Temperature = step % 2 == 0 ? 0.8 : 0, Seed = step, StopTokenIds = new HashSet<int> { 2 },
                });
            }
            decoder.Step();
            if (decoder.Count == 0) emptyAt.Add((step, DisposeScopeManager.Statistics.ThreadTotalLiveCount));
        }
        // Between bursts the batch empties; then nothing of it may be left alive.
        var series = string.Join(", ", emptyAt.Select(e => $"{e.Step}:{e.Live}"));
        Assert.True(emptyAt.Count >= 2 && emptyAt[0].Step < 100, series);
        Assert.True(emptyAt[^1].Live <= emptyAt[0].Live, $"live tensors grew: {series}");
    }
}
