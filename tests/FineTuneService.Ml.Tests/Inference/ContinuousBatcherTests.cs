using FineTuneService.Ml.Generation;
using FineTuneService.Ml.Inference;
using FineTuneService.Ml.Models;
using FineTuneService.Ml.Tests.Models;

namespace FineTuneService.Ml.Tests.Inference;

public sealed class ContinuousBatcherTests
{
    private static SequenceOptions Greedy(int maxNewTokens) => new() { MaxNewTokens = maxNewTokens, StopTokenIds = new HashSet<int>() };

    private static async Task<(List<int> Tokens, FinishReason Reason)> CollectAsync(IAsyncEnumerable<DecodedToken> stream)
    {
        var tokens = new List<int>();
        FinishReason? reason = null;
        await foreach (var token in stream)
        {
            if (token.TokenId is { } id) tokens.Add(id);
            reason ??= token.Finished;
        }
        return (tokens, reason ?? throw new InvalidOperationException("The stream ended without a finish reason."));
    }

    [Fact]
    public async Task Concurrent_requests_share_the_batch_and_each_get_their_own_tokens()
    {
        using var model = DecoderLM.CreateRandom(TinyModels.Qwen2(), seed: 11);
        IReadOnlyList<int>[] prompts = [[5, 9, 13], [11, 3, 7, 7, 8], [8], [20, 21, 22, 23]];
        var alone = prompts.Select(p => new TextGenerator(model).Generate([p], new GenerationOptions { MaxNewTokens = 10, StopTokenIds = [] })[0].TokenIds).ToList();

        using var batcher = new ContinuousBatcher(model, maxBatchSize: 3, name: "test");
        var results = await Task.WhenAll(prompts.Select(p => CollectAsync(batcher.GenerateAsync(p, Greedy(10)))));

        Assert.Equal(alone, results.Select(r => r.Tokens.ToArray()));
        Assert.All(results, r => Assert.Equal(FinishReason.Length, r.Reason));
    }

    [Fact]
    public async Task A_caller_that_stops_reading_leaves_the_batch()
    {
        using var model = DecoderLM.CreateRandom(TinyModels.Llama(), seed: 2);
        using var batcher = new ContinuousBatcher(model, maxBatchSize: 4, name: "test");
        var read = 0;
        await foreach (var _ in batcher.GenerateAsync([5, 6, 7], Greedy(50)))
            if (++read == 3) break;

        var next = await CollectAsync(batcher.GenerateAsync([9, 10], Greedy(4)));

        Assert.Equal(4, next.Tokens.Count);
        await Eventually(() => batcher.Load == 0);
    }

    [Fact]
    public async Task A_prompt_too_long_for_the_context_fails_only_its_own_request()
    {
        using var model = DecoderLM.CreateRandom(TinyModels.Llama(), seed: 2);
        using var batcher = new ContinuousBatcher(model, maxBatchSize: 4, name: "test");
        var tooLong = Enumerable.Repeat(5, model.Config.MaxPositionEmbeddings).ToArray();

        // Sent together, so that they are likely to be prefilled as one group: the bad one must not take the other down.
        var bad = CollectAsync(batcher.GenerateAsync(tooLong, Greedy(4)));
        var good = CollectAsync(batcher.GenerateAsync([9, 10], Greedy(4)));

        await Assert.ThrowsAsync<ArgumentException>(() => bad);
        Assert.Equal(4, (await good).Tokens.Count);
        Assert.Equal(4, (await CollectAsync(batcher.GenerateAsync([9, 10], Greedy(4)))).Tokens.Count);
    }

    private static async Task Eventually(Func<bool> condition)
    {
        for (var i = 0; i < 200 && !condition(); i++) await Task.Delay(10);
        Assert.True(condition());
    }
}
