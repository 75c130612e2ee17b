namespace FineTuneService.Datasets.Tokenization;

/// <summary>
/// The data of a byte-level BPE tokenizer as Hugging Face stores it: token→id vocabulary (special tokens included),
/// ordered merges, special ("added") tokens and the pre-tokenization regex.
/// </summary>
public sealed record BpeModel(
    IReadOnlyDictionary<string, int> Vocabulary,
    IReadOnlyList<(string Left, string Right)> Merges,
    IReadOnlyDictionary<string, int> SpecialTokens,
    string PreTokenizerPattern = ByteLevel.Gpt2Pattern)
{
    /// <summary>Tokens the service's own tokenizers reserve: document end, ChatML turn markers, padding.</summary>
    public static IReadOnlyList<string> DefaultSpecialTokens { get; } = [EndOfText, ImStart, ImEnd, Pad];

    public const string EndOfText = "<|endoftext|>";
    public const string ImStart = "<|im_start|>";
    public const string ImEnd = "<|im_end|>";
    public const string Pad = "<|pad|>";

    /// <summary>Largest id + 1 (ids may have gaps in foreign files).</summary>
    public int VocabularySize => Math.Max(Vocabulary.Count == 0 ? 0 : Vocabulary.Values.Max() + 1, SpecialTokens.Count == 0 ? 0 : SpecialTokens.Values.Max() + 1);
}
