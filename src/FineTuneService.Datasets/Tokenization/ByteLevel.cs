using System.Text;
using System.Text.RegularExpressions;

namespace FineTuneService.Datasets.Tokenization;

/// <summary>
/// GPT-2's byte-level alphabet: every byte maps to one printable character (space becomes 'Ġ', newline 'Ċ'), so
/// BPE works on strings while covering arbitrary UTF-8.
/// </summary>
public static partial class ByteLevel
{
    /// <summary>GPT-2 pre-tokenization: contractions, letters, digits, other symbols, whitespace runs.</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private static readonly char[] ByteToCharTable = BuildByteToChar();
    private static readonly Dictionary<char, byte> CharToByteTable = ByteToCharTable.Select((c, b) => (c, b)).ToDictionary(x => x.c, x => (byte)x.b);

    /// <summary>The 256 byte characters in GPT-2 order (printable bytes first); index i is the i-th base token.</summary>
    public static IReadOnlyList<char> Alphabet { get; } = BuildAlphabetOrder();

    [GeneratedRegex(Gpt2Pattern)]
    public static partial Regex Gpt2Regex();

    public static char ByteToChar(byte b) => ByteToCharTable[b];

    /// <summary>UTF-8 bytes of <paramref name="text"/> as byte-level characters.</summary>
    public static string Encode(ReadOnlySpan<char> text)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(text)];
        Encoding.UTF8.GetBytes(text, bytes);
        return string.Create(bytes.Length, bytes, static (chars, source) =>
        {
            for (int i = 0; i < source.Length; i++)
                chars[i] = ByteToCharTable[source[i]];
        });
    }

    /// <summary>Appends the bytes a byte-level token stands for; false when it has a character outside the alphabet.</summary>
    public static bool TryAppendBytes(string token, List<byte> bytes)
    {
        foreach (char c in token)
        {
            if (!CharToByteTable.TryGetValue(c, out byte b))
                return false;
            bytes.Add(b);
        }

        return true;
    }

    private static char[] BuildByteToChar()
    {
        var table = new char[256];
        int next = 0;
        for (int b = 0; b < 256; b++)
            table[b] = IsPrintable(b) ? (char)b : (char)(256 + next++);
        return table;
    }

    private static List<char> BuildAlphabetOrder()
    {
        var order = new List<char>(256);
        for (int b = 0; b < 256; b++)
            if (IsPrintable(b))
                order.Add((char)b);
        for (int b = 0; b < 256; b++)
            if (!IsPrintable(b))
                order.Add(ByteToCharTable[b]);
        return order;
    }

    private static bool IsPrintable(int b) => b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
}
