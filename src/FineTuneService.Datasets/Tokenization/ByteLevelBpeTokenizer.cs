using System.Collections.Concurrent;
using System.Text;
using System.Text.RegularExpressions;

namespace FineTuneService.Datasets.Tokenization;

/// <summary>
/// The service's own byte-level BPE encoder: special tokens are cut out first, the rest is pre-tokenized with the
/// model's regex, mapped to byte-level characters and merged by rank (lowest first, all occurrences left to right,
/// as GPT-2 does). Used by <see cref="BpeTrainer"/>; files it saves load through Microsoft.ML.Tokenizers
/// (<see cref="TokenizerFolder"/>) and encode identically.
/// </summary>
public sealed class ByteLevelBpeTokenizer : IByteLevelBpeTokenizer
{
    private const int MaxCachedWords = 200_000;

    private readonly Dictionary<(int, int), (int Rank, int Merged)> _merges;
    private readonly string[] _idToToken;
    private readonly Dictionary<int, string> _specialById;
    private readonly Regex _preTokenizer;
    private readonly Regex? _specialSplitter;
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);

    public ByteLevelBpeTokenizer(BpeModel model, string eosToken = BpeModel.ImEnd, string padToken = BpeModel.Pad, string? bosToken = null)
    {
        Model = model;
        _idToToken = new string[model.VocabularySize];
        foreach (var (token, id) in model.Vocabulary)
            _idToToken[id] = token;
        foreach (var (token, id) in model.SpecialTokens)
            _idToToken[id] = token;
        _specialById = model.SpecialTokens.ToDictionary(kv => kv.Value, kv => kv.Key);

        _merges = new Dictionary<(int, int), (int, int)>(model.Merges.Count);
        for (int rank = 0; rank < model.Merges.Count; rank++)
        {
            var (left, right) = model.Merges[rank];
            if (model.Vocabulary.TryGetValue(left, out int l) && model.Vocabulary.TryGetValue(right, out int r) && model.Vocabulary.TryGetValue(left + right, out int merged))
                _merges.TryAdd((l, r), (rank, merged));
        }

        _preTokenizer = model.PreTokenizerPattern == ByteLevel.Gpt2Pattern ? ByteLevel.Gpt2Regex() : new Regex(model.PreTokenizerPattern, RegexOptions.Compiled);
        _specialSplitter = SpecialTokenSplitter(model.SpecialTokens.Keys);

        EosTokenId = RequiredSpecial(eosToken);
        PadTokenId = RequiredSpecial(padToken);
        BosTokenId = bosToken is null ? null : RequiredSpecial(bosToken);
    }

    public BpeModel Model { get; }

    public int VocabularySize => _idToToken.Length;
    public int EosTokenId { get; }
    public int PadTokenId { get; }
    public int? BosTokenId { get; }

    public int? SpecialTokenId(string token) => Model.SpecialTokens.TryGetValue(token, out int id) ? id : null;

    public IReadOnlyList<int> Encode(string text)
    {
        var ids = new List<int>(text.Length / 3 + 4);
        int start = 0;
        if (_specialSplitter is not null)
        {
            foreach (Match special in _specialSplitter.Matches(text))
            {
                EncodeOrdinary(text.AsSpan(start, special.Index - start), ids);
                ids.Add(Model.SpecialTokens[special.Value]);
                start = special.Index + special.Length;
            }
        }

        EncodeOrdinary(text.AsSpan(start), ids);
        return ids;
    }

    public IReadOnlyList<int> EncodeOrdinary(string text)
    {
        var ids = new List<int>(text.Length / 3 + 4);
        EncodeOrdinary(text, ids);
        return ids;
    }

    public string Decode(IEnumerable<int> ids)
    {
        var text = new StringBuilder();
        var bytes = new List<byte>();
        foreach (int id in ids)
        {
            if (_specialById.TryGetValue(id, out string? special))
            {
                Flush();
                text.Append(special);
            }
            else if ((uint)id < (uint)_idToToken.Length && _idToToken[id] is { } token)
                ByteLevel.TryAppendBytes(token, bytes);
        }

        Flush();
        return text.ToString();

        void Flush()
        {
            text.Append(System.Text.Encoding.UTF8.GetString(bytes.ToArray()));
            bytes.Clear();
        }
    }

    /// <summary>Regex that finds any of <paramref name="specialTokens"/>, longest first; null when there are none.</summary>
    internal static Regex? SpecialTokenSplitter(IEnumerable<string> specialTokens)
    {
        var alternatives = specialTokens.OrderByDescending(t => t.Length).ThenBy(t => t, StringComparer.Ordinal).Select(Regex.Escape).ToList();
        return alternatives.Count == 0 ? null : new Regex(string.Join('|', alternatives), RegexOptions.Compiled);
    }

    private void EncodeOrdinary(ReadOnlySpan<char> text, List<int> ids)
    {
        if (text.IsEmpty)
            return;
        foreach (var match in _preTokenizer.EnumerateMatches(text))
        {
            string word = ByteLevel.Encode(text.Slice(match.Index, match.Length));
            if (!_cache.TryGetValue(word, out int[]? wordIds))
            {
                wordIds = MergeWord(word);
                if (_cache.Count >= MaxCachedWords)
                    _cache.Clear();
                _cache.TryAdd(word, wordIds);
            }

            ids.AddRange(wordIds);
        }
    }

    private int[] MergeWord(string word)
    {
        var symbols = new List<int>(word.Length);
        foreach (char c in word)
            symbols.Add(Model.Vocabulary.TryGetValue(c.ToString(), out int id)
                ? id
                : throw new InvalidOperationException($"The vocabulary lacks the byte-level symbol U+{(int)c:X4}."));

        while (symbols.Count > 1)
        {
            int bestRank = int.MaxValue, bestMerged = -1, left = -1, right = -1;
            for (int i = 0; i < symbols.Count - 1; i++)
            {
                if (_merges.TryGetValue((symbols[i], symbols[i + 1]), out var merge) && merge.Rank < bestRank)
                    (bestRank, bestMerged, left, right) = (merge.Rank, merge.Merged, symbols[i], symbols[i + 1]);
            }

            if (bestMerged < 0)
                break;
            for (int i = 0; i < symbols.Count - 1; i++)
            {
                if (symbols[i] == left && symbols[i + 1] == right)
                {
                    symbols[i] = bestMerged;
                    symbols.RemoveAt(i + 1);
                }
            }
        }

        return symbols.ToArray();
    }

    private int RequiredSpecial(string token) =>
        SpecialTokenId(token) ?? throw new ArgumentException($"{token} is not a special token of this vocabulary.", nameof(token));
}
