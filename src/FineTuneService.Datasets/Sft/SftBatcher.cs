namespace FineTuneService.Datasets.Sft;

/// <summary>
/// A batch laid out row-major as [<see cref="BatchSize"/>, <see cref="SequenceLength"/>], ready to become int64/bool
/// tensors. <see cref="LossMask"/>[t] marks tokens that are targets: the trainer scores logits at t-1 against
/// <see cref="InputIds"/>[t] where the mask at t is true.
/// </summary>
public sealed record TokenBatch(int BatchSize, int SequenceLength, long[] InputIds, long[] AttentionMask, bool[] LossMask, long[] PositionIds)
{
    /// <summary>Number of target tokens in the batch.</summary>
    public int TrainableTokens => LossMask.Count(m => m);

    /// <summary>Non-padding tokens in the batch.</summary>
    public long RealTokens => AttentionMask.Sum();
}

/// <summary>Groups tokenized examples into padded or packed batches (torch-free; plain arrays).</summary>
public static class SftBatcher
{
    /// <summary>A copy of <paramref name="items"/> in a seeded Fisher–Yates order (same seed, same order).</summary>
    public static T[] Shuffled<T>(IReadOnlyList<T> items, int seed)
    {
        var copy = items.ToArray();
        new Random(seed).Shuffle(copy);
        return copy;
    }

    /// <summary>
    /// One example per row, right-padded with <paramref name="padTokenId"/> to the longest example (or to
    /// <paramref name="sequenceLength"/> when given; longer examples are cut).
    /// </summary>
    public static TokenBatch Pad(IReadOnlyList<TokenizedExample> examples, int padTokenId, int? sequenceLength = null)
    {
        ArgumentOutOfRangeException.ThrowIfZero(examples.Count);
        int length = sequenceLength ?? examples.Max(e => e.Length);
        var batch = Allocate(examples.Count, length, padTokenId);
        for (int row = 0; row < examples.Count; row++)
            Place(batch, row, column: 0, examples[row]);
        return batch;
    }

    /// <summary>Consecutive padded batches of <paramref name="batchSize"/> examples (the last may be smaller).</summary>
    public static IEnumerable<TokenBatch> PaddedBatches(IReadOnlyList<TokenizedExample> examples, int batchSize, int padTokenId, int? sequenceLength = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        for (int start = 0; start < examples.Count; start += batchSize)
            yield return Pad(examples.Skip(start).Take(batchSize).ToList(), padTokenId, sequenceLength);
    }

    /// <summary>
    /// Packs examples, in order, into rows of exactly <paramref name="sequenceLength"/> tokens: an example goes into
    /// the current row when it fits, else starts a new one (examples are never split; longer ones are cut to the row).
    /// Positions restart at 0 for each example; the rest of a row is padding.
    /// </summary>
    public static IEnumerable<TokenBatch> PackedBatches(IReadOnlyList<TokenizedExample> examples, int batchSize, int sequenceLength, int padTokenId)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(sequenceLength, 1);
        var rows = new List<List<TokenizedExample>>();
        int used = sequenceLength;
        foreach (var example in examples)
        {
            int length = Math.Min(example.Length, sequenceLength);
            if (used + length > sequenceLength)
            {
                rows.Add([]);
                used = 0;
            }

            rows[^1].Add(example);
            used += length;
        }

        for (int start = 0; start < rows.Count; start += batchSize)
        {
            var chunk = rows.Skip(start).Take(batchSize).ToList();
            var batch = Allocate(chunk.Count, sequenceLength, padTokenId);
            for (int row = 0; row < chunk.Count; row++)
            {
                int column = 0;
                foreach (var example in chunk[row])
                    column += Place(batch, row, column, example);
            }

            yield return batch;
        }
    }

    private static TokenBatch Allocate(int rows, int length, int padTokenId)
    {
        var ids = new long[rows * length];
        Array.Fill(ids, padTokenId);
        return new TokenBatch(rows, length, ids, new long[rows * length], new bool[rows * length], new long[rows * length]);
    }

    /// <summary>Copies an example into a row from <paramref name="column"/>; returns the tokens placed.</summary>
    private static int Place(TokenBatch batch, int row, int column, TokenizedExample example)
    {
        int count = Math.Min(example.Length, batch.SequenceLength - column);
        int offset = row * batch.SequenceLength + column;
        for (int i = 0; i < count; i++)
        {
            batch.InputIds[offset + i] = example.InputIds[i];
            batch.AttentionMask[offset + i] = 1;
            batch.LossMask[offset + i] = example.LossMask[i];
            batch.PositionIds[offset + i] = i;
        }

        return count;
    }
}
