using System.Text.RegularExpressions;
using FineTuneService.Datasets.Templates;
using Microsoft.ML.Tokenizers;

namespace FineTuneService.Datasets.Tokenization;

/// <summary>
/// A byte-level BPE tokenizer loaded from Hugging Face files (see <see cref="TokenizerFolder.Load"/>), encoding and
/// decoding through Microsoft.ML.Tokenizers' <see cref="BpeTokenizer"/>. Carries the folder's chat template and
/// special-token roles.
/// </summary>
public sealed class HfBpeTokenizer : IByteLevelBpeTokenizer
{
    private readonly BpeTokenizer _inner;
    private readonly BpeTokenizer _ordinary;

    public HfBpeTokenizer(BpeModel model, string eosToken, string padToken, string? bosToken, ChatTemplate chatTemplate, int modelMaxLength)
    {
        Model = model;
        ChatTemplate = chatTemplate;
        ModelMaxLength = modelMaxLength;
        var specials = new Dictionary<string, int>(model.SpecialTokens, StringComparer.Ordinal);
        var vocabulary = new Dictionary<string, int>(model.Vocabulary, StringComparer.Ordinal);
        foreach (var (token, id) in specials)
            vocabulary.TryAdd(token, id);

        var preTokenizerRegex = new Regex(model.PreTokenizerPattern, RegexOptions.Compiled);
        _inner = BpeTokenizer.Create(new BpeOptions(vocabulary)
        {
            Merges = model.Merges.Select(m => $"{m.Left} {m.Right}"),
            SpecialTokens = specials,
            PreTokenizer = new RegexPreTokenizer(preTokenizerRegex, specials),
            ByteLevel = true,
        });

        // Same model without special-token splitting: special strings in plain text are tokenized as bytes.
        _ordinary = BpeTokenizer.Create(new BpeOptions(vocabulary)
        {
            Merges = model.Merges.Select(m => $"{m.Left} {m.Right}"),
            PreTokenizer = new RegexPreTokenizer(preTokenizerRegex, specialTokens: null),
            ByteLevel = true,
        });

        VocabularySize = model.VocabularySize;
        EosTokenId = Required(eosToken);
        PadTokenId = Required(padToken);
        BosTokenId = bosToken is null ? null : Required(bosToken);
    }

    public BpeModel Model { get; }

    /// <summary>Chat template recognised from <c>tokenizer_config.json</c> (ChatML when none is given).</summary>
    public ChatTemplate ChatTemplate { get; }

    /// <summary><c>model_max_length</c> from <c>tokenizer_config.json</c>.</summary>
    public int ModelMaxLength { get; }

    /// <summary>The underlying Microsoft.ML.Tokenizers tokenizer.</summary>
    public Tokenizer Inner => _inner;

    public int VocabularySize { get; }
    public int EosTokenId { get; }
    public int PadTokenId { get; }
    public int? BosTokenId { get; }

    public int? SpecialTokenId(string token) => Model.SpecialTokens.TryGetValue(token, out int id) ? id : null;

    public IReadOnlyList<int> Encode(string text) => _inner.EncodeToIds(text);

    public IReadOnlyList<int> EncodeOrdinary(string text) => _ordinary.EncodeToIds(text);

    public string Decode(IEnumerable<int> ids) => _inner.Decode(ids, considerSpecialTokens: true);

    private int Required(string token) =>
        SpecialTokenId(token) ?? throw new InvalidDataException($"Special token {token} is not among the tokenizer's added tokens.");
}
