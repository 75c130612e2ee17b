namespace FineTuneService.Datasets.Templates;

/// <summary>Chat formats the service knows how to render without a Jinja engine.</summary>
public enum ChatTemplateFamily
{
    /// <summary><c>&lt;|im_start|&gt;role\ncontent&lt;|im_end|&gt;\n</c>: Qwen2 and the service's own models.</summary>
    ChatMl,

    /// <summary><c>&lt;|start_header_id|&gt;role&lt;|end_header_id|&gt;\n\ncontent&lt;|eot_id|&gt;</c>: Llama 3.</summary>
    Llama3,
}

/// <summary>
/// A piece of a rendered chat. Special pieces are single special tokens looked up by id (never BPE-encoded, so text
/// that merely looks like a control token cannot become one by accident); <see cref="Trainable"/> pieces count
/// towards the SFT loss.
/// </summary>
public sealed record ChatSegment(string Text, bool IsSpecial, bool Trainable);

/// <summary>
/// Renders chats for one model family. The HF Jinja source is kept verbatim so saved <c>tokenizer_config.json</c>
/// files stay usable by <c>transformers</c>; rendering itself is hand-written per family and mirrors that source.
/// </summary>
public sealed class ChatTemplate
{
    /// <summary>HF chat_template of ChatML models (no default system prompt).</summary>
    public const string ChatMlJinja =
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    /// <summary>HF chat_template of Llama 3 instruct models.</summary>
    public const string Llama3Jinja =
        "{% set loop_messages = messages %}{% for message in loop_messages %}" +
        "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}" +
        "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}" +
        "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

    public static ChatTemplate ChatMl { get; } = new(ChatTemplateFamily.ChatMl, ChatMlJinja, endOfTurnToken: "<|im_end|>", beginOfTextToken: null);

    public static ChatTemplate Llama3 { get; } = new(ChatTemplateFamily.Llama3, Llama3Jinja, endOfTurnToken: "<|eot_id|>", beginOfTextToken: "<|begin_of_text|>");

    private ChatTemplate(ChatTemplateFamily family, string jinjaSource, string endOfTurnToken, string? beginOfTextToken)
    {
        Family = family;
        JinjaSource = jinjaSource;
        EndOfTurnToken = endOfTurnToken;
        BeginOfTextToken = beginOfTextToken;
    }

    public ChatTemplateFamily Family { get; }

    /// <summary>The HF Jinja text, written to <c>tokenizer_config.json</c> as <c>chat_template</c>.</summary>
    public string JinjaSource { get; }

    /// <summary>Token that closes a turn; generation stops on it.</summary>
    public string EndOfTurnToken { get; }

    /// <summary>Token rendered once at the start of a chat, or null.</summary>
    public string? BeginOfTextToken { get; }

    /// <summary>
    /// Recognises the family from a <c>chat_template</c> value (exact text or any template using the family's control
    /// tokens). Null or empty means ChatML, the service's default.
    /// </summary>
    /// <exception cref="NotSupportedException">The template uses neither ChatML nor Llama 3 control tokens.</exception>
    public static ChatTemplate FromJinja(string? chatTemplate)
    {
        if (string.IsNullOrWhiteSpace(chatTemplate) || chatTemplate.Contains("<|im_start|>", StringComparison.Ordinal))
            return ChatMl;
        if (chatTemplate.Contains("<|start_header_id|>", StringComparison.Ordinal))
            return Llama3;
        throw new NotSupportedException("Unsupported chat_template: only ChatML (<|im_start|>) and Llama 3 (<|start_header_id|>) families are rendered.");
    }

    /// <summary>
    /// The template a loaded tokenizer folder names, else the family whose control tokens the tokenizer has
    /// (Llama 3 first, else ChatML).
    /// </summary>
    public static ChatTemplate ForTokenizer(ITextTokenizer tokenizer) =>
        tokenizer is Tokenization.HfBpeTokenizer loaded ? loaded.ChatTemplate
        : tokenizer.SpecialTokenId("<|start_header_id|>") is not null && tokenizer.SpecialTokenId("<|eot_id|>") is not null ? Llama3
        : ChatMl;

    /// <summary>The chat as ordered pieces; concatenating their text gives <see cref="Render"/>.</summary>
    public IReadOnlyList<ChatSegment> Segments(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
    {
        var segments = new List<ChatSegment>(messages.Count * 5 + 3);
        if (BeginOfTextToken is not null)
            segments.Add(new ChatSegment(BeginOfTextToken, IsSpecial: true, Trainable: false));

        foreach (var message in messages)
        {
            bool trainable = message.IsTrainable;
            switch (Family)
            {
                case ChatTemplateFamily.ChatMl:
                    segments.Add(new ChatSegment("<|im_start|>", true, false));
                    segments.Add(new ChatSegment(message.Role + "\n", false, false));
                    AddContent(segments, message.Content, trainable);
                    segments.Add(new ChatSegment("<|im_end|>", true, trainable));
                    segments.Add(new ChatSegment("\n", false, false));
                    break;
                case ChatTemplateFamily.Llama3:
                    segments.Add(new ChatSegment("<|start_header_id|>", true, false));
                    segments.Add(new ChatSegment(message.Role, false, false));
                    segments.Add(new ChatSegment("<|end_header_id|>", true, false));
                    segments.Add(new ChatSegment("\n\n", false, false));
                    AddContent(segments, message.Content.Trim(), trainable);
                    segments.Add(new ChatSegment("<|eot_id|>", true, trainable));
                    break;
            }
        }

        if (addGenerationPrompt)
            segments.AddRange(GenerationPrompt());
        return segments;
    }

    /// <summary>The chat as text, identical to what the HF template produces.</summary>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt) =>
        string.Concat(Segments(messages, addGenerationPrompt).Select(s => s.Text));

    private IEnumerable<ChatSegment> GenerationPrompt() => Family switch
    {
        ChatTemplateFamily.ChatMl => [new("<|im_start|>", true, false), new("assistant\n", false, false)],
        _ => [new("<|start_header_id|>", true, false), new("assistant", false, false), new("<|end_header_id|>", true, false), new("\n\n", false, false)],
    };

    private static void AddContent(List<ChatSegment> segments, string content, bool trainable)
    {
        if (content.Length > 0)
            segments.Add(new ChatSegment(content, false, trainable));
    }
}
