namespace FineTuneService.Datasets;

/// <summary>
/// One chat turn. Roles are "system", "user" and "assistant". <paramref name="Weight"/> is OpenAI's optional per-turn
/// weight on assistant turns: 0 keeps the turn as context only (no loss), 1 or null trains on it.
/// </summary>
public sealed record ChatMessage(string Role, string Content, int? Weight = null)
{
    public const string System = "system";
    public const string User = "user";
    public const string Assistant = "assistant";

    /// <summary>True for assistant turns that count towards the loss.</summary>
    public bool IsTrainable => Role == Assistant && Weight != 0;
}

/// <summary>
/// One training example as read from JSONL; prompt/completion rows become a user and an assistant turn.
/// <paramref name="LossWeight"/> scales its assistant tokens in the loss relative to other examples' (1 by default):
/// the bootstrap mix raises one-token label answers, which per-token averaging otherwise drowns in long answers.
/// </summary>
public sealed record ChatExample(IReadOnlyList<ChatMessage> Messages, int LineNumber, float LossWeight = 1f);

/// <summary>
/// One preference pair (OpenAI's DPO rows): a conversation ending with a user turn, the preferred assistant answer
/// and the non-preferred one. Only the answers are trained on: earlier assistant turns of the input are context.
/// </summary>
public sealed record PreferenceExample(IReadOnlyList<ChatMessage> Input, string Preferred, string NonPreferred, int LineNumber)
{
    /// <summary>The conversation answered with the preferred output.</summary>
    public ChatExample Chosen => Answered(Preferred);

    /// <summary>The conversation answered with the non-preferred output.</summary>
    public ChatExample Rejected => Answered(NonPreferred);

    private ChatExample Answered(string answer) =>
        new([.. Input.Select(m => m.Role == ChatMessage.Assistant ? m with { Weight = 0 } : m), new ChatMessage(ChatMessage.Assistant, answer)], LineNumber);
}

/// <summary>
/// A tokenized example ready for training: ids of the rendered chat and, per position, whether the token counts
/// towards the loss (assistant tokens only), and the example's relative loss weight (see <see cref="ChatExample"/>).
/// </summary>
public sealed record TokenizedExample(int[] InputIds, bool[] LossMask, float LossWeight = 1f)
{
    public int Length => InputIds.Length;

    /// <summary>Positions that count towards the loss.</summary>
    public int TrainableTokenCount => LossMask.Count(trainable => trainable);
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
    /// <summary>Encodes text; special-token strings in it (e.g. "&lt;|im_end|&gt;") become their special ids.</summary>
    IReadOnlyList<int> Encode(string text);

    /// <summary>
    /// Encodes text as plain text: special-token strings are tokenized like any other characters. Chat content is
    /// encoded this way so a message cannot smuggle in control tokens (role injection).
    /// </summary>
    IReadOnlyList<int> EncodeOrdinary(string text) => Encode(text);

    string Decode(IEnumerable<int> ids);
}
