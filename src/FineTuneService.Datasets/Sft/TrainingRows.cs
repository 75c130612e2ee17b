namespace FineTuneService.Datasets.Sft;

/// <summary>How the loss of a step averages over its loss-bearing tokens.</summary>
public enum LossAveraging
{
    /// <summary>Every assistant token weighs the same: long answers dominate the step.</summary>
    PerToken,

    /// <summary>
    /// Each example's tokens are averaged first, then the examples: a one-word answer (a class label) weighs as much
    /// as a paragraph, so short-answer tasks still train beside long open-ended answers.
    /// </summary>
    PerExample,
}


/// <summary>
/// One row of a batch: input ids and shifted next-token labels, <see cref="IgnoreIndex"/> where the next token does
/// not count (non-assistant tokens, example boundaries inside a packed row, padding). <see cref="Weights"/> holds each
/// position's loss weight (1 per target token, or 1 / the example's target count when averaging per example, times the
/// example's <see cref="TokenizedExample.LossWeight"/>), and
/// <see cref="WeightSum"/> their sum: the row's share of the step's normaliser.
/// </summary>
public sealed record TrainingRow(int[] InputIds, int[] Labels, int TargetCount, float[] Weights, double WeightSum)
{
    public const int IgnoreIndex = -100;

    public int Length => InputIds.Length;

    /// <summary>Position of the row in its set, for rows that carry per-row data (DPO's reference log-probabilities).</summary>
    public int Index { get; init; }
}

/// <summary>Turns tokenized examples into rows: one per example (padded later) or packed up to a maximum length.</summary>
public static class TrainingRows
{
    public static List<TrainingRow> Build(IReadOnlyList<TokenizedExample> examples, int maxLength, bool packing, long seed,
        LossAveraging averaging = LossAveraging.PerToken)
    {
        var rows = examples.Select(e => ToRow(e, maxLength, averaging)).Where(r => r.TargetCount > 0).ToList();
        if (!packing) return rows;

        // Pack in a seeded order so rows mix examples from the whole set; the packing is fixed for the run and
        // each epoch then shuffles the packed rows, which keeps the number of steps per epoch constant. An example
        // goes into the first open row with room for it; closing a row at the first example that does not fit left
        // a fifth of the bootstrap build's positions as padding.
        var order = DataOrder.Permutation(rows.Count, seed, epoch: -1);
        var packed = new List<TrainingRow>();
        var open = new List<PackedRow>(OpenPackedRows);
        foreach (var index in order)
        {
            var row = rows[index];
            var target = open.Find(p => p.Length + row.Length <= maxLength);
            if (target is null)
            {
                if (open.Count == OpenPackedRows) Close(open.MaxBy(p => p.Length)!);
                target = new PackedRow(maxLength);
                open.Add(target);
            }
            target.Append(row);
            if (target.Length == maxLength) Close(target);
        }
        packed.AddRange(open.Select(p => p.ToRow()));
        return packed;

        void Close(PackedRow row)
        {
            open.Remove(row);
            packed.Add(row.ToRow());
        }
    }

    /// <summary>How many packed rows take examples at once.</summary>
    public const int OpenPackedRows = 16;

    private sealed class PackedRow(int capacity)
    {
        private readonly List<int> ids = new(capacity);
        private readonly List<int> labels = new(capacity);
        private readonly List<float> weights = new(capacity);
        private int targets;
        private double weightSum;

        public int Length => ids.Count;

        public void Append(TrainingRow row)
        {
            ids.AddRange(row.InputIds);
            labels.AddRange(row.Labels);
            weights.AddRange(row.Weights);
            targets += row.TargetCount;
            weightSum += row.WeightSum;
        }

        public TrainingRow ToRow() => new([.. ids], [.. labels], targets, [.. weights], weightSum);
    }

    /// <summary>Labels for position t are the token at t+1 when that token is in the loss mask.</summary>
    public static TrainingRow ToRow(TokenizedExample example, int maxLength, LossAveraging averaging = LossAveraging.PerToken)
    {
        if (example.LossMask.Length != example.InputIds.Length)
            throw new ArgumentException($"LossMask has {example.LossMask.Length} entries for {example.InputIds.Length} tokens.");
        var length = Math.Min(example.Length, maxLength);
        var ids = example.InputIds[..length];
        var labels = new int[length];
        var targets = 0;
        for (var t = 0; t < length; t++)
        {
            var next = t + 1;
            if (next < length && example.LossMask[next])
            {
                labels[t] = example.InputIds[next];
                targets++;
            }
            else
            {
                labels[t] = TrainingRow.IgnoreIndex;
            }
        }
        // Per example: the example's targets share a total weight of 1, so the step averages examples, not tokens.
        // The example's own loss weight scales either, and the step divides by the weights' sum (a weighted mean).
        var weight = (averaging == LossAveraging.PerExample && targets > 0 ? 1f / targets : 1f) * example.LossWeight;
        var weights = new float[length];
        for (var t = 0; t < length; t++)
            if (labels[t] != TrainingRow.IgnoreIndex) weights[t] = weight;
        var examples = targets > 0 ? 1 : 0;
        return new TrainingRow(ids, labels, targets, weights, (averaging == LossAveraging.PerExample ? examples : targets) * (double)example.LossWeight);
    }
}

/// <summary>
/// Seeded data order: the permutation of an epoch is a pure function of (seed, epoch), so resuming needs only the
/// step to find the data cursor. SplitMix64 + Fisher-Yates, independent of <see cref="Random"/>'s implementation.
/// </summary>
public static class DataOrder
{
    public static int[] Permutation(int count, long seed, int epoch)
    {
        var order = Enumerable.Range(0, count).ToArray();
        var state = unchecked((ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)(epoch + 2) * 0xBF58476D1CE4E5B9UL);
        for (var i = count - 1; i > 0; i--)
        {
            var j = (int)(Next(ref state) % (ulong)(i + 1));
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }

    private static ulong Next(ref ulong state)
    {
        var z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}

/// <summary>
/// How a run walks its rows: micro-batches of <c>batchSize</c> rows per epoch, <c>accumulation</c> micro-batches per
/// optimizer step, <c>epochs</c> passes (cut at <c>maxSteps</c>), each epoch in the seeded order of
/// <see cref="DataOrder"/>. The trainer steps through it; the API's estimate counts the same tokens from it.
/// </summary>
public sealed record TrainingSchedule(int RowCount, int BatchSize, int GradientAccumulationSteps, int Epochs, int? MaxSteps)
{
    public int MicroBatchesPerEpoch => (RowCount + BatchSize - 1) / BatchSize;

    public int StepsPerEpoch => (MicroBatchesPerEpoch + GradientAccumulationSteps - 1) / GradientAccumulationSteps;

    /// <summary>Optimizer steps of the whole run.</summary>
    public int TotalSteps => Math.Min(Epochs * StepsPerEpoch, MaxSteps ?? int.MaxValue);

    /// <summary>The micro-batches (0-based within their epoch) of optimizer step <paramref name="stepNumber"/> (1-based), and its epoch (0-based).</summary>
    public (int Epoch, int FirstMicroBatch, int EndMicroBatch) Step(int stepNumber)
    {
        var epoch = (stepNumber - 1) / StepsPerEpoch;
        var first = (stepNumber - 1) % StepsPerEpoch * GradientAccumulationSteps;
        return (epoch, first, Math.Min(first + GradientAccumulationSteps, MicroBatchesPerEpoch));
    }

    /// <summary>Indexes into the rows of one micro-batch, given its epoch's order.</summary>
    public Range MicroBatch(int microBatch) => (microBatch * BatchSize)..Math.Min((microBatch + 1) * BatchSize, RowCount);

    /// <summary>
    /// Tokens the run trains on, padding excluded: every row's length, once per step that takes it. This is the job's
    /// <c>trained_tokens</c> when it runs to the end.
    /// </summary>
    public long TrainedTokens(IReadOnlyList<TrainingRow> rows, long seed) => TrainedTokens(rows.Select(r => (long)r.Length).ToArray(), seed);

    /// <summary>
    /// Tokens the run trains on when its batch units are not single rows (a preference pair's two rows): each unit's
    /// tokens, indexed as the schedule's rows, once per step that takes it.
    /// </summary>
    public long TrainedTokens(IReadOnlyList<long> unitTokens, long seed)
    {
        var rows = unitTokens;
        if (rows.Count != RowCount) throw new ArgumentException($"The schedule is for {RowCount} rows, got {rows.Count}.", nameof(unitTokens));
        var perEpoch = rows.Sum();
        var fullEpochs = TotalSteps / StepsPerEpoch;
        var tokens = fullEpochs * perEpoch;
        // A max_steps cut inside an epoch: count that epoch's first steps in its own order.
        var restSteps = TotalSteps - fullEpochs * StepsPerEpoch;
        if (restSteps > 0)
        {
            var order = DataOrder.Permutation(RowCount, seed, fullEpochs);
            var (_, _, end) = Step(fullEpochs * StepsPerEpoch + restSteps);
            var range = MicroBatch(end - 1);
            tokens += order[..range.End.Value].Sum(i => rows[i]);
        }
        return tokens;
    }
}
