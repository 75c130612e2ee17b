namespace FineTuneService.Datasets.Sft;

/// <summary>A preference pair, tokenized: each side is the conversation with its answer, the loss mask on the answer.</summary>
public sealed record TokenizedPair(TokenizedExample Chosen, TokenizedExample Rejected)
{
    /// <summary>Both sides of <paramref name="pair"/> encoded as training examples, each cut at <paramref name="maxLength"/> tokens.</summary>
    public static TokenizedPair Encode(ChatExampleEncoder encoder, PreferenceExample pair, int maxLength) =>
        new(encoder.Encode(pair.Chosen, maxLength), encoder.Encode(pair.Rejected, maxLength));

    /// <summary>chosen₀, rejected₀, chosen₁, … : the trainer's row order for pairs.</summary>
    public static List<TokenizedExample> Interleave(IEnumerable<TokenizedPair> pairs) => [.. pairs.SelectMany(p => new[] { p.Chosen, p.Rejected })];
}

/// <summary>
/// The rows preference (DPO) training walks, torch-free so the API's estimate counts what the trainer trains: one
/// unpacked row per side, chosen and rejected interleaved, a pair being the batch unit (<see cref="TrainingSchedule"/>
/// over pairs) whose tokens are both its rows.
/// </summary>
public static class PreferenceRows
{
    /// <summary>Rows of interleaved (chosen, rejected) examples, unpacked and unfiltered so that row 2i and 2i+1 stay a pair.</summary>
    /// <param name="what">"training" or "validation", for the errors.</param>
    /// <exception cref="ArgumentException">Odd rows, or an answer with no token left to score after the cut.</exception>
    public static List<TrainingRow> Build(IReadOnlyList<TokenizedExample> interleaved, int maxLength, string what)
    {
        if (interleaved.Count % 2 != 0)
            throw new ArgumentException($"Preference {what} data must hold whole pairs (chosen, rejected); got {interleaved.Count} rows.");
        var rows = interleaved.Select((e, i) => TrainingRows.ToRow(e, maxLength) with { Index = i }).ToList();
        var empty = rows.FindIndex(r => r.TargetCount == 0);
        if (empty >= 0)
            throw new ArgumentException($"Preference {what} pair {empty / 2 + 1} has an answer with no token to score (after truncation to MaxSequenceLength).");
        return rows;
    }

    /// <summary>Tokens of each pair (a batch unit): its chosen row's length plus its rejected row's.</summary>
    public static long[] PairLengths(IReadOnlyList<TrainingRow> rows) =>
        [.. Enumerable.Range(0, rows.Count / 2).Select(i => (long)rows[2 * i].Length + rows[2 * i + 1].Length)];
}
