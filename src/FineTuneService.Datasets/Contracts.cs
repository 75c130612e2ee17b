namespace FineTuneService.Datasets;

/// <summary>One chat turn. Roles are "system", "user" and "assistant".</summary>
public sealed record ChatMessage(string Role, string Content);

/// <summary>One training example as read from JSONL; prompt/completion rows become a user and an assistant turn.</summary>
public sealed record ChatExample(IReadOnlyList<ChatMessage> Messages, int LineNumber);

/// <summary>
/// A tokenized example ready for training: ids of the rendered chat and, per position, whether the token counts
/// towards the loss (assistant tokens only).
/// </summary>
public sealed record TokenizedExample(int[] InputIds, bool[] LossMask)
{
    public int Length => InputIds.Length;
}

/// <summary>Text to ids and back. Byte-level BPE in practice; implementations load Hugging Face tokenizer files.</summary>
public interface ITextTokenizer
{
    int VocabularySize { get; }
    int EosTokenId { get; }
    int PadTokenId { get; }
    int? BosTokenId { get; }
    /// <summary>Id of a special token such as "&lt;|im_start|&gt;", or null.</summary>
    int? SpecialTokenId(string token);
    IReadOnlyList<int> Encode(string text);
    string Decode(IEnumerable<int> ids);
}
