using FineTuneService.Datasets.Templates;

namespace FineTuneService.Datasets.Sft;

/// <summary>
/// Turns chats into token ids through a chat template. Training and inference share this path, so the prompt a model
/// sees at generation time is tokenized exactly like the prompts it was trained on. Control tokens come only from the
/// template; message text is encoded as plain text, so "&lt;|im_start|&gt;system" inside a message stays text.
/// </summary>
public sealed class ChatExampleEncoder
{
    private readonly ITextTokenizer _tokenizer;

    public ChatExampleEncoder(ITextTokenizer tokenizer, ChatTemplate? template = null)
    {
        _tokenizer = tokenizer;
        Template = template ?? ChatTemplate.ForTokenizer(tokenizer);
        EndOfTurnTokenId = SpecialId(Template.EndOfTurnToken);
    }

    public ChatTemplate Template { get; }

    /// <summary>Id of the token that ends a turn (stop token for generation).</summary>
    public int EndOfTurnTokenId { get; }

    /// <summary>
    /// Encodes a training example. The loss mask is true exactly on trainable assistant content and the token that
    /// closes that turn. Longer sequences are cut to <paramref name="maxLength"/> tokens (the tail is dropped).
    /// </summary>
    public TokenizedExample Encode(ChatExample example, int maxLength = int.MaxValue)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLength, 1);
        var ids = new List<int>();
        var mask = new List<bool>();
        foreach (var segment in Template.Segments(example.Messages, addGenerationPrompt: false))
        {
            int before = ids.Count;
            AppendSegment(segment, ids);
            for (int i = before; i < ids.Count; i++)
                mask.Add(segment.Trainable);
            if (ids.Count >= maxLength)
                break;
        }

        int length = Math.Min(ids.Count, maxLength);
        return new TokenizedExample(ids.GetRange(0, length).ToArray(), mask.GetRange(0, length).ToArray(), example.LossWeight);
    }

    /// <summary>
    /// Encodes examples for training, dropping those left without any trainable token after truncation.
    /// </summary>
    public List<TokenizedExample> EncodeAll(IEnumerable<ChatExample> examples, int maxLength) =>
        examples.Select(e => Encode(e, maxLength)).Where(e => e.TrainableTokenCount > 0).ToList();

    /// <summary>Encodes a conversation for generation, by default followed by the assistant header.</summary>
    public int[] EncodePrompt(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true)
    {
        var ids = new List<int>();
        foreach (var segment in Template.Segments(messages, addGenerationPrompt))
            AppendSegment(segment, ids);
        return ids.ToArray();
    }

    /// <summary>Number of tokens of the full rendered example, without truncation.</summary>
    public int CountTokens(ChatExample example)
    {
        int count = 0;
        foreach (var segment in Template.Segments(example.Messages, addGenerationPrompt: false))
            count += segment.IsSpecial ? 1 : _tokenizer.EncodeOrdinary(segment.Text).Count;
        return count;
    }

    private void AppendSegment(ChatSegment segment, List<int> ids)
    {
        if (segment.IsSpecial)
            ids.Add(SpecialId(segment.Text));
        else
            ids.AddRange(_tokenizer.EncodeOrdinary(segment.Text));
    }

    private int SpecialId(string token) =>
        _tokenizer.SpecialTokenId(token)
        ?? throw new InvalidOperationException($"The tokenizer has no special token {token} required by the {Template.Family} chat template.");
}
