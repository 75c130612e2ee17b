using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace FineTuneService.Datasets.Evaluation;

/// <summary>
/// The held-out rule for benchmark harmful prompts: a prompt is held out when the SHA-256 of its normalised key, read
/// as a number in [0, 1), is below <see cref="Fraction"/>. Held-out prompts are what the safety gate and the
/// benchmarks measure refusal on, so no training mix may contain them. The rule depends on nothing else (no seed, no
/// build setting), so nothing a training recipe varies can change what the evaluation measures.
/// </summary>
public static partial class HeldOutSplit
{
    /// <summary>Share of the harmful prompts held out. The shipped bootstrap model and its acceptance figures depend on it.</summary>
    public const double Fraction = 0.3;

    /// <summary>Whether the harmful prompt with this key (goal or behavior text) is in the held-out share.</summary>
    public static bool IsHeldOut(string key)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(Normalize(key)), hash);
        double unit = (BinaryPrimitives.ReadUInt64BigEndian(hash) >> 11) * (1.0 / (1UL << 53));
        return unit < Fraction;
    }

    /// <summary>Lower case with whitespace runs collapsed to one space and trimmed: how prompts are compared.</summary>
    public static string Normalize(string text) => WhitespaceRun().Replace(text.ToLowerInvariant(), " ").Trim();

    [GeneratedRegex(@"\s+")]
    private static partial Regex WhitespaceRun();
}
