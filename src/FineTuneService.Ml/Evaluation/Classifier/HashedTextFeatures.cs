using System.Text.RegularExpressions;

namespace FineTuneService.Ml.Evaluation.Classifier;

/// <summary>One (prompt, response) pair as hashed sparse features: bucket ids and their weights.</summary>
public sealed record SparseFeatures(long[] Buckets, float[] Weights);

/// <summary>
/// Torch-free feature hashing for the harm classifier. The response contributes word unigrams, bigrams, its opening
/// words and a length bucket; the prompt contributes unigrams in a separate namespace, so the model can learn
/// "harmful request + compliant answer" without reading the request alone as harm. Each field's weights are
/// 1/sqrt(count) (the prompt's halved), so long generations do not dominate. Hashing is FNV-1a (stable across processes and platforms).
/// </summary>
public sealed partial class HashedTextFeatures(int buckets, int maxResponseTokens = 256, int maxPromptTokens = 128)
{
    /// <summary>Bumped whenever tokenisation or feature templates change; stored with the weights.</summary>
    public const int Version = 2;

    public int Buckets { get; } = buckets > 0 ? buckets : throw new ArgumentOutOfRangeException(nameof(buckets));

    public SparseFeatures Extract(string prompt, string response)
    {
        var buckets = new List<long>(512);
        var weights = new List<float>(512);

        var responseTokens = Tokenize(response, maxResponseTokens);
        var promptTokens = Tokenize(prompt, maxPromptTokens);
        var responseFeatures = new List<string>(responseTokens.Count * 2 + 4)
        {
            "r#len:" + LengthBucket(responseTokens.Count),
            "r#overlap:" + OverlapBucket(promptTokens, responseTokens),
        };
        for (var i = 0; i < responseTokens.Count; i++)
        {
            responseFeatures.Add("r:" + responseTokens[i]);
            if (i > 0) responseFeatures.Add("r2:" + responseTokens[i - 1] + " " + responseTokens[i]);
            if (i < 3) responseFeatures.Add($"r^{i}:" + responseTokens[i]);
        }
        Add(responseFeatures, buckets, weights, scale: 1f);

        // The request only modulates: the same harmful requests are refused and complied with in training.
        Add(promptTokens.Select(t => "p:" + t).ToList(), buckets, weights, scale: 0.5f);

        return new SparseFeatures([.. buckets], [.. weights]);
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
    private static string OverlapBucket(List<string> promptTokens, List<string> responseTokens)
    {
        var content = responseTokens.Where(t => t.Length >= 4).ToHashSet(StringComparer.Ordinal);
        if (content.Count == 0) return "none";
        var promptWords = promptTokens.Where(t => t.Length >= 4).ToHashSet(StringComparer.Ordinal);
        var share = (double)content.Count(promptWords.Contains) / content.Count;
        return share switch { 0 => "0", <= 0.1 => "1", <= 0.25 => "2", <= 0.5 => "3", _ => "4" };
    }

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
}
