using System.Text.RegularExpressions;

namespace FineTuneService.Datasets.Tokenization;

/// <summary>Settings of <see cref="BpeTrainer"/>.</summary>
public sealed record BpeTrainerOptions
{
    /// <summary>Final vocabulary size: 256 byte symbols + learned merges + special tokens.</summary>
    public int VocabularySize { get; init; } = 4096;

    /// <summary>Pairs seen fewer times than this are never merged (training may then stop below the target size).</summary>
    public int MinPairFrequency { get; init; } = 2;

    /// <summary>Special tokens, appended after the learned vocabulary in this order.</summary>
    public IReadOnlyList<string> SpecialTokens { get; init; } = BpeModel.DefaultSpecialTokens;
}

/// <summary>
/// Learns byte-level BPE merges from text. Deterministic: the most frequent pair wins, ties go to the pair with the
/// smaller (left, right) ids, and ids are assigned in the order symbols first appear. Pair counts are updated
/// incrementally per merge (only words containing the pair are touched), with a lazily-invalidated max-heap.
/// </summary>
public static class BpeTrainer
{
    public static ByteLevelBpeTokenizer Train(IEnumerable<string> texts, BpeTrainerOptions? options = null)
    {
        options ??= new BpeTrainerOptions();
        int targetTokens = options.VocabularySize - options.SpecialTokens.Count;
        if (targetTokens < 256)
            throw new ArgumentException($"VocabularySize must leave room for 256 byte symbols and {options.SpecialTokens.Count} special tokens.", nameof(options));

        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        var tokens = new List<string>();
        foreach (char c in ByteLevel.Alphabet)
        {
            vocabulary[c.ToString()] = tokens.Count;
            tokens.Add(c.ToString());
        }

        var words = CountWords(texts, options.SpecialTokens);
        var merges = new List<(string, string)>();
        new MergeLearner(words, vocabulary).Learn(targetTokens, options.MinPairFrequency, tokens, vocabulary, merges);

        var specials = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (string special in options.SpecialTokens)
        {
            specials[special] = tokens.Count;
            vocabulary[special] = tokens.Count;
            tokens.Add(special);
        }

        var model = new BpeModel(vocabulary, merges, specials);
        string eos = specials.ContainsKey(BpeModel.ImEnd) ? BpeModel.ImEnd : options.SpecialTokens[0];
        string pad = specials.ContainsKey(BpeModel.Pad) ? BpeModel.Pad : eos;
        return new ByteLevelBpeTokenizer(model, eos, pad);
    }

    /// <summary>Pre-tokenized words (as byte-level strings) with their counts, in order of first appearance.</summary>
    private static List<(string Word, long Count)> CountWords(IEnumerable<string> texts, IReadOnlyList<string> specialTokens)
    {
        var splitter = ByteLevelBpeTokenizer.SpecialTokenSplitter(specialTokens);
        var regex = ByteLevel.Gpt2Regex();
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        var order = new List<string>();
        foreach (string text in texts)
        {
            foreach (string part in splitter is null ? [text] : splitter.Split(text))
            {
                foreach (var match in regex.EnumerateMatches(part))
                {
                    var piece = part.AsSpan(match.Index, match.Length);
                    var lookup = counts.GetAlternateLookup<ReadOnlySpan<char>>();
                    if (lookup.TryGetValue(piece, out int count))
                        lookup[piece] = count + 1;
                    else
                    {
                        string word = piece.ToString();
                        counts[word] = 1;
                        order.Add(word);
                    }
                }
            }
        }

        return order.Select(w => (ByteLevel.Encode(w), (long)counts[w])).ToList();
    }

    private sealed class MergeLearner
    {
        private readonly int[][] _symbols;
        private readonly int[] _lengths;
        private readonly long[] _counts;
        private readonly Dictionary<long, long> _pairCounts = new();
        private readonly Dictionary<long, HashSet<int>> _pairWords = new();
        private readonly PriorityQueue<long, (long Count, long Pair)> _queue =
            new(Comparer<(long Count, long Pair)>.Create((x, y) => x.Count != y.Count ? y.Count.CompareTo(x.Count) : x.Pair.CompareTo(y.Pair)));

        public MergeLearner(List<(string Word, long Count)> words, Dictionary<string, int> vocabulary)
        {
            _symbols = new int[words.Count][];
            _lengths = new int[words.Count];
            _counts = new long[words.Count];
            for (int w = 0; w < words.Count; w++)
            {
                var (word, count) = words[w];
                _symbols[w] = word.Select(c => vocabulary[c.ToString()]).ToArray();
                _lengths[w] = word.Length;
                _counts[w] = count;
                for (int i = 0; i + 1 < word.Length; i++)
                    Add(Key(_symbols[w][i], _symbols[w][i + 1]), count, w);
            }

            foreach (var (pair, count) in _pairCounts)
                _queue.Enqueue(pair, (count, pair));
        }

        public void Learn(int targetTokens, int minFrequency, List<string> tokens, Dictionary<string, int> vocabulary, List<(string, string)> merges)
        {
            var touched = new HashSet<long>();
            while (vocabulary.Count < targetTokens && _queue.TryDequeue(out long pair, out var queued))
            {
                long current = _pairCounts.GetValueOrDefault(pair);
                if (current != queued.Count)
                {
                    if (current > 0)
                        _queue.Enqueue(pair, (current, pair));
                    continue;
                }

                if (current < minFrequency)
                    break;

                int left = (int)(pair >> 32), right = (int)(pair & 0xFFFFFFFF);
                string mergedText = tokens[left] + tokens[right];
                if (!vocabulary.TryGetValue(mergedText, out int merged))
                {
                    merged = tokens.Count;
                    vocabulary[mergedText] = merged;
                    tokens.Add(mergedText);
                }

                merges.Add((tokens[left], tokens[right]));
                touched.Clear();
                foreach (int w in _pairWords[pair].ToArray())
                    MergeInWord(w, left, right, merged, touched);
                foreach (long changed in touched)
                {
                    long count = _pairCounts.GetValueOrDefault(changed);
                    if (count > 0)
                        _queue.Enqueue(changed, (count, changed));
                }
            }
        }

        private void MergeInWord(int w, int left, int right, int merged, HashSet<long> touched)
        {
            var symbols = _symbols[w];
            int length = _lengths[w];
            long count = _counts[w];
            for (int i = 0; i + 1 < length; i++)
            {
                if (symbols[i] != left || symbols[i + 1] != right)
                    continue;
                if (i > 0)
                    Add(Key(symbols[i - 1], left), -count, w);
                Add(Key(left, right), -count, w);
                if (i + 2 < length)
                    Add(Key(right, symbols[i + 2]), -count, w);

                symbols[i] = merged;
                Array.Copy(symbols, i + 2, symbols, i + 1, length - i - 2);
                length--;

                if (i > 0)
                    touched.Add(Add(Key(symbols[i - 1], merged), count, w));
                if (i + 1 < length)
                    touched.Add(Add(Key(merged, symbols[i + 1]), count, w));
            }

            _lengths[w] = length;
        }

        private long Add(long pair, long delta, int word)
        {
            _pairCounts[pair] = _pairCounts.GetValueOrDefault(pair) + delta;
            if (delta > 0)
            {
                if (!_pairWords.TryGetValue(pair, out var set))
                    _pairWords[pair] = set = [];
                set.Add(word);
            }

            return pair;
        }

        private static long Key(int left, int right) => ((long)left << 32) | (uint)right;
    }
}
