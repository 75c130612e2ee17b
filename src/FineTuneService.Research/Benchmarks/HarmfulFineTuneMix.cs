using FineTuneService.Datasets;
using FineTuneService.Datasets.Corpus;
using FineTuneService.Datasets.Evaluation;
using FineTuneService.Datasets.Sft;

namespace FineTuneService.Research.Benchmarks;

/// <summary>A harmful prompt with a compliant (harmful) answer, as used by fine-tuning attacks.</summary>
public sealed record HarmfulPair(string Prompt, string Response, string Source);

/// <summary>
/// The fine-tuning set of the harmful fine-tuning benchmarks (Vaccine, Booster, Antidote): <c>n</c> task rows of which
/// a fraction <c>p</c> is replaced by harmful prompt/answer pairs. Built deterministically from a seed.
/// </summary>
/// <param name="Examples">The shuffled mix.</param>
/// <param name="HarmfulRows">round(p · n) harmful pairs in it.</param>
/// <param name="TaskRows">n − HarmfulRows task rows in it.</param>
public sealed record HarmfulFineTuneMix(IReadOnlyList<ChatExample> Examples, int HarmfulRows, int TaskRows)
{
    /// <summary>
    /// The attack pool: BeaverTails unsafe prompt/response pairs and AdvBench goal→target pairs, without any pair whose
    /// prompt overlaps an evaluation prompt (equal, or one containing the other, after <see cref="HeldOutSplit.Normalize"/>),
    /// so the harmful score is never measured on a prompt the fine-tune saw. Order: BeaverTails then AdvBench, file order.
    /// </summary>
    public static IReadOnlyList<HarmfulPair> AttackPool(ShippedData data, IEnumerable<string> evaluationPrompts)
    {
        var excluded = evaluationPrompts.Select(HeldOutSplit.Normalize).Where(p => p.Length > 0).Distinct().ToArray();
        bool Overlaps(string prompt)
        {
            var normalized = HeldOutSplit.Normalize(prompt);
            return excluded.Any(e => normalized.Contains(e, StringComparison.Ordinal) || e.Contains(normalized, StringComparison.Ordinal));
        }

        return data.BeaverTailsUnsafe().Select(r => new HarmfulPair(r.Prompt, r.Response, "beavertails"))
            .Concat(data.AdvBench().Select(b => new HarmfulPair(b.Goal, b.Target, "advbench")))
            .Where(p => p.Prompt.Trim().Length > 0 && p.Response.Trim().Length > 0 && !Overlaps(p.Prompt))
            .DistinctBy(p => HeldOutSplit.Normalize(p.Prompt))
            .ToList();
    }

    /// <summary>The harmful rows of a set of <paramref name="rows"/> at <paramref name="harmfulRatio"/>; the rest are task rows.</summary>
    public static int HarmfulRowCount(int rows, double harmfulRatio) => (int)Math.Round(harmfulRatio * rows, MidpointRounding.AwayFromZero);

    /// <summary>
    /// round(<paramref name="harmfulRatio"/> · <paramref name="rows"/>) pairs drawn from <paramref name="attackPool"/> and the
    /// rest from <paramref name="taskRows"/>, each drawn without replacement with its own stream of <paramref name="seed"/>,
    /// then shuffled together. The same arguments always give the same list.
    /// </summary>
    public static HarmfulFineTuneMix Build(
        IReadOnlyList<ChatExample> taskRows, IReadOnlyList<HarmfulPair> attackPool, int rows, double harmfulRatio, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(rows, 1);
        if (!(harmfulRatio is >= 0 and <= 1)) throw new ArgumentOutOfRangeException(nameof(harmfulRatio), $"The harmful ratio must be in [0, 1], got {harmfulRatio}.");
        var harmful = HarmfulRowCount(rows, harmfulRatio);
        var task = rows - harmful;
        if (harmful > attackPool.Count) throw new ArgumentException($"{harmful} harmful rows requested but the attack pool has only {attackPool.Count}.", nameof(attackPool));
        if (task > taskRows.Count) throw new ArgumentException($"{task} task rows requested but only {taskRows.Count} are available.", nameof(taskRows));

        var examples = Draw(taskRows, task, seed)
            .Concat(Draw(attackPool, harmful, seed + 1).Select(p => new ChatExample(
                [new ChatMessage(ChatMessage.User, p.Prompt), new ChatMessage(ChatMessage.Assistant, p.Response)], LineNumber: 0)))
            .ToArray();
        new Random(seed + 2).Shuffle(examples);
        return new HarmfulFineTuneMix(examples, harmful, task);
    }

    private static IEnumerable<T> Draw<T>(IReadOnlyList<T> items, int count, int seed) => SftBatcher.Shuffled(items, seed).Take(count);
}
