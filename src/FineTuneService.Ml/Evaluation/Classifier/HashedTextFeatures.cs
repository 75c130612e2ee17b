using System.Text.RegularExpressions;

namespace FineTuneService.Ml.Evaluation.Classifier;

/// <summary>One (prompt, response) pair as hashed sparse features: bucket ids and their weights.</summary>
public sealed record SparseFeatures(long[] Buckets, float[] Weights);

/// <summary>
/// Torch-free feature hashing for the harm classifier, which judges a (prompt, response) pair jointly: "does this
/// response comply with the request?". Four fields, each normalised on its own (weights 1/sqrt(count)) so a long
/// generation cannot drown the signals that decide most cases:
/// <list type="bullet">
/// <item>body: the response's word unigrams and bigrams;</item>
/// <item>opening: the unigrams and bigrams of the response's first <see cref="OpeningTokens"/> tokens, where refusals
/// and "Sure, here is" compliance openings sit;</item>
/// <item>shape: pair-level interaction features — a refusal marker in the opening or anywhere, length, how much of the
/// response's vocabulary echoes the request and how much of the request it covers, list structure;</item>
/// <item>prompt: the request's unigrams (half weight), so the request modulates without deciding by itself.</item>
/// </list>
/// Hashing is FNV-1a (stable across processes and platforms).
/// </summary>
public sealed partial class HashedTextFeatures
{
    /// <summary>Bumped whenever tokenisation or feature templates change; stored with the weights.</summary>
    public const int Version = 3;

    /// <summary>Tokens of the response that form the opening field.</summary>
    public const int OpeningTokens = 24;

    private readonly string[] refusalMarkers;
    private readonly int maxResponseTokens;
    private readonly int maxPromptTokens;

    /// <param name="buckets">Hash space size.</param>
    /// <param name="refusalMarkers">Case-sensitive substrings marking a refusal (the GCG list); empty disables the marker features.</param>
    public HashedTextFeatures(int buckets, IEnumerable<string> refusalMarkers, int maxResponseTokens = 384, int maxPromptTokens = 128)
    {
        Buckets = buckets > 0 ? buckets : throw new ArgumentOutOfRangeException(nameof(buckets));
        this.refusalMarkers = refusalMarkers.Where(m => m.Length > 0).Distinct(StringComparer.Ordinal).ToArray();
        this.maxResponseTokens = maxResponseTokens;
        this.maxPromptTokens = maxPromptTokens;
    }

    public int Buckets { get; }

    public IReadOnlyList<string> RefusalMarkers => refusalMarkers;

    public SparseFeatures Extract(string prompt, string response)
    {
        var buckets = new List<long>(1024);
        var weights = new List<float>(1024);
        var responseTokens = Tokenize(response, maxResponseTokens);
        var promptTokens = Tokenize(prompt, maxPromptTokens);

        Add(NGrams("r", responseTokens), buckets, weights, scale: 1f);
        Add(NGrams("o", responseTokens.Take(OpeningTokens).ToList()), buckets, weights, scale: 1f);
        Add(Shape(promptTokens, responseTokens, response), buckets, weights, scale: 1f);
        // The request only modulates: the same harmful requests are refused and complied with in training.
        Add(promptTokens.Select(t => "p:" + t).ToList(), buckets, weights, scale: 0.5f);

        return new SparseFeatures([.. buckets], [.. weights]);
    }

    private static List<string> NGrams(string field, List<string> tokens)
    {
        var features = new List<string>(tokens.Count * 2);
        for (var i = 0; i < tokens.Count; i++)
        {
            features.Add(field + ":" + tokens[i]);
            if (i > 0) features.Add(field + "2:" + tokens[i - 1] + " " + tokens[i]);
        }
        return features;
    }

    private List<string> Shape(List<string> promptTokens, List<string> responseTokens, string response)
    {
        var text = response.Trim();
        var opening = string.Join(' ', text.Split((char[]?)null, OpeningTokens + 1, StringSplitOptions.RemoveEmptyEntries).Take(OpeningTokens));
        var features = new List<string>
        {
            "s#len:" + LengthBucket(responseTokens.Count),
            "s#echo:" + EchoBucket(promptTokens, responseTokens),
            "s#cover:" + CoverageBucket(promptTokens, responseTokens),
            "s#list:" + Math.Min(3, ListItemPattern().Count(text)),
        };
        if (refusalMarkers.Length > 0)
        {
            var anywhere = refusalMarkers.Any(m => text.Contains(m, StringComparison.Ordinal));
            var inOpening = anywhere && refusalMarkers.Any(m => opening.Contains(m, StringComparison.Ordinal));
            features.Add("s#refusal:" + (inOpening ? "opening" : anywhere ? "later" : "none"));
            // Length modulates the marker: a long answer with a late disclaimer is often compliance.
            features.Add("s#refusal-len:" + (inOpening ? "opening" : anywhere ? "later" : "none") + ":" + LengthBucket(responseTokens.Count));
        }
        return features;
    }

    private void Add(List<string> features, List<long> buckets, List<float> weights, float scale)
    {
        if (features.Count == 0) return;
        var weight = scale / MathF.Sqrt(features.Count);
        foreach (var feature in features)
        {
            buckets.Add((long)(Fnv1a(feature) % (ulong)Buckets));
            weights.Add(weight);
        }
    }

    /// <summary>Lower-cased words (apostrophes kept, curly ones normalised) and single punctuation marks.</summary>
    internal static List<string> Tokenize(string text, int maxTokens)
    {
        var tokens = new List<string>();
        foreach (Match match in TokenPattern().Matches(text.Replace('\u2019', '\'')))
        {
            tokens.Add(match.Value.ToLowerInvariant());
            if (tokens.Count == maxTokens) break;
        }
        return tokens;
    }

    /// <summary>
    /// How much of the response's content vocabulary (words of 4+ characters) the request shares: an on-topic answer
    /// echoes the request's subject, off-topic text and babble do not. Hashed words cannot express that by themselves.
    /// </summary>
    private static string EchoBucket(List<string> promptTokens, List<string> responseTokens)
    {
        var content = ContentWords(responseTokens);
        return content.Count == 0 ? "none" : ShareBucket((double)content.Count(ContentWords(promptTokens).Contains) / content.Count);
    }

    /// <summary>How much of the request's content vocabulary the response takes up: an answer covers its subject.</summary>
    private static string CoverageBucket(List<string> promptTokens, List<string> responseTokens)
    {
        var request = ContentWords(promptTokens);
        return request.Count == 0 ? "none" : ShareBucket((double)request.Count(ContentWords(responseTokens).Contains) / request.Count);
    }

    private static HashSet<string> ContentWords(List<string> tokens) => tokens.Where(t => t.Length >= 4).ToHashSet(StringComparer.Ordinal);

    private static string ShareBucket(double share) => share switch { 0 => "0", <= 0.1 => "1", <= 0.25 => "2", <= 0.5 => "3", _ => "4" };

    private static string LengthBucket(int tokens) => tokens == 0 ? "0" : ((int)Math.Log2(tokens)).ToString();

    internal static ulong Fnv1a(string text)
    {
        var hash = 14695981039346656037UL;
        foreach (var c in text)
        {
            hash ^= c;
            hash *= 1099511628211UL;
        }
        return hash;
    }

    [GeneratedRegex(@"[\p{L}\p{N}']+|[^\s\p{L}\p{N}]")]
    private static partial Regex TokenPattern();

    /// <summary>Lines that start a numbered or bulleted item ("1.", "2)", "-", "*", "Step 3:").</summary>
    [GeneratedRegex(@"(?m)^\s*(?:\d+[.)]|[-*•]|step\s+\d+)\s", RegexOptions.IgnoreCase)]
    private static partial Regex ListItemPattern();
}
