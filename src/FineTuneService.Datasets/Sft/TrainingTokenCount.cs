namespace FineTuneService.Datasets.Sft;

/// <summary>What a supervised or preference (DPO) run on a file will train: its rows, optimizer steps and trained tokens.</summary>
/// <param name="Examples">Examples (preference pairs) in the file.</param>
/// <param name="Rows">Training rows (examples with at least one assistant target token after truncation; two per pair).</param>
/// <param name="StepsPerEpoch">Optimizer steps per epoch.</param>
/// <param name="TotalSteps">Optimizer steps of the run.</param>
/// <param name="TrainedTokens">Tokens trained on, padding excluded: the job's <c>trained_tokens</c> when it completes.</param>
public sealed record TrainingTokenCount(int Examples, int Rows, int StepsPerEpoch, int TotalSteps, long TrainedTokens)
{
    /// <summary>
    /// Encodes <paramref name="examples"/> as the worker does (the root model's tokenizer and chat template, cut at
    /// <paramref name="maxSequenceLength"/>), builds the unpacked rows and walks the schedule of <paramref name="epochs"/>
    /// epochs of <paramref name="batchSize"/> rows, one micro-batch per step.
    /// </summary>
    public static TrainingTokenCount Of(IReadOnlyList<ChatExample> examples, ITextTokenizer tokenizer, int maxSequenceLength,
        int epochs, int batchSize, long seed)
    {
        var encoder = new ChatExampleEncoder(tokenizer);
        var rows = TrainingRows.Build(examples.Select(e => encoder.Encode(e, maxSequenceLength)).ToList(), maxSequenceLength, packing: false, seed);
        var schedule = new TrainingSchedule(rows.Count, batchSize, GradientAccumulationSteps: 1, epochs, MaxSteps: null);
        return new TrainingTokenCount(examples.Count, rows.Count, schedule.StepsPerEpoch, schedule.TotalSteps,
            rows.Count == 0 ? 0 : schedule.TrainedTokens(rows, seed));
    }

    /// <summary>
    /// Encodes <paramref name="pairs"/> as the DPO trainer does (<see cref="TokenizedPair.Encode"/>, <see cref="PreferenceRows"/>)
    /// and walks the schedule over pairs: <paramref name="batchSize"/> pairs a step, each taking both its rows' tokens.
    /// </summary>
    /// <exception cref="ArgumentException">An answer has no token left to score after the cut (the job would fail on it).</exception>
    public static TrainingTokenCount OfPreference(IReadOnlyList<PreferenceExample> pairs, ITextTokenizer tokenizer, int maxSequenceLength,
        int epochs, int batchSize, long seed)
    {
        var encoder = new ChatExampleEncoder(tokenizer);
        var rows = PreferenceRows.Build(TokenizedPair.Interleave(pairs.Select(p => TokenizedPair.Encode(encoder, p, maxSequenceLength))),
            maxSequenceLength, "training");
        var schedule = new TrainingSchedule(pairs.Count, batchSize, GradientAccumulationSteps: 1, epochs, MaxSteps: null);
        return new TrainingTokenCount(pairs.Count, rows.Count, schedule.StepsPerEpoch, schedule.TotalSteps,
            pairs.Count == 0 ? 0 : schedule.TrainedTokens(PreferenceRows.PairLengths(rows), seed));
    }
}
