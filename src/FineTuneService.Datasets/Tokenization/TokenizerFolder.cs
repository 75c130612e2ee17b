using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using FineTuneService.Datasets.Templates;

namespace FineTuneService.Datasets.Tokenization;

/// <summary>
/// Saves and loads byte-level BPE tokenizers as a Hugging Face tokenizer folder: <c>vocab.json</c>,
/// <c>merges.txt</c>, <c>tokenizer.json</c>, <c>tokenizer_config.json</c> (with <c>chat_template</c>) and
/// <c>special_tokens_map.json</c>. Saved folders load in <c>transformers.AutoTokenizer</c>.
/// </summary>
public static class TokenizerFolder
{
    public const string VocabFile = "vocab.json";
    public const string MergesFile = "merges.txt";
    public const string TokenizerJsonFile = "tokenizer.json";
    public const string TokenizerConfigFile = "tokenizer_config.json";
    public const string SpecialTokensMapFile = "special_tokens_map.json";

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private static readonly JsonSerializerOptions Compact = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>True when <paramref name="directory"/> holds a loadable tokenizer.</summary>
    public static bool Exists(string directory) =>
        File.Exists(Path.Combine(directory, TokenizerJsonFile)) ||
        (File.Exists(Path.Combine(directory, VocabFile)) && File.Exists(Path.Combine(directory, MergesFile)));

    /// <summary>Writes all five files into <paramref name="directory"/> (created if missing).</summary>
    public static void Save(string directory, IByteLevelBpeTokenizer tokenizer, ChatTemplate? chatTemplate = null, int modelMaxLength = 2048)
    {
        Directory.CreateDirectory(directory);
        var model = tokenizer.Model;
        chatTemplate ??= ChatTemplate.ForTokenizer(tokenizer);
        var tokenById = model.SpecialTokens.ToDictionary(kv => kv.Value, kv => kv.Key);
        string eos = tokenById[tokenizer.EosTokenId];
        string pad = tokenById[tokenizer.PadTokenId];
        string? bos = tokenizer.BosTokenId is int bosId ? tokenById[bosId] : null;
        var specials = model.SpecialTokens.OrderBy(kv => kv.Value).ToList();
        var vocabulary = new JsonObject();
        foreach (var (token, id) in model.Vocabulary.Concat(specials).DistinctBy(kv => kv.Key).OrderBy(kv => kv.Value))
            vocabulary[token] = id;

        File.WriteAllText(Path.Combine(directory, VocabFile), vocabulary.ToJsonString(Compact));
        File.WriteAllLines(Path.Combine(directory, MergesFile), model.Merges.Select(m => $"{m.Left} {m.Right}").Prepend("#version: 0.2"));

        var addedTokens = new JsonArray(specials.Select(kv => (JsonNode)new JsonObject
        {
            ["id"] = kv.Value, ["content"] = kv.Key, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
            ["normalized"] = false, ["special"] = true,
        }).ToArray());
        bool gpt2Regex = model.PreTokenizerPattern == ByteLevel.Gpt2Pattern;
        var tokenizerJson = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = addedTokens,
            ["normalizer"] = null,
            ["pre_tokenizer"] = gpt2Regex
                ? ByteLevelNode(useRegex: true)
                : new JsonObject
                {
                    ["type"] = "Sequence",
                    ["pretokenizers"] = new JsonArray(
                        new JsonObject { ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = model.PreTokenizerPattern }, ["behavior"] = "Isolated", ["invert"] = false },
                        ByteLevelNode(useRegex: false)),
                },
            ["post_processor"] = ByteLevelNode(useRegex: true, trimOffsets: false),
            ["decoder"] = ByteLevelNode(useRegex: true),
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = "", ["end_of_word_suffix"] = "",
                ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = false,
                ["vocab"] = vocabulary.DeepClone(),
                ["merges"] = new JsonArray(model.Merges.Select(m => (JsonNode)JsonValue.Create($"{m.Left} {m.Right}")).ToArray()),
            },
        };
        File.WriteAllText(Path.Combine(directory, TokenizerJsonFile), tokenizerJson.ToJsonString(Indented));

        var decoder = new JsonObject();
        foreach (var (token, id) in specials)
            decoder[id.ToString()] = new JsonObject
            {
                ["content"] = token, ["lstrip"] = false, ["normalized"] = false, ["rstrip"] = false, ["single_word"] = false, ["special"] = true,
            };
        var additional = specials.Select(kv => kv.Key).Where(t => t != eos && t != pad && t != bos).ToArray();
        var config = new JsonObject
        {
            ["add_bos_token"] = false,
            ["add_prefix_space"] = false,
            ["added_tokens_decoder"] = decoder,
            ["additional_special_tokens"] = new JsonArray(additional.Select(t => (JsonNode)JsonValue.Create(t)).ToArray()),
            ["bos_token"] = bos,
            ["chat_template"] = chatTemplate.JinjaSource,
            ["clean_up_tokenization_spaces"] = false,
            ["eos_token"] = eos,
            ["errors"] = "replace",
            ["model_max_length"] = modelMaxLength,
            ["pad_token"] = pad,
            ["tokenizer_class"] = "GPT2Tokenizer",
            ["unk_token"] = null,
        };
        File.WriteAllText(Path.Combine(directory, TokenizerConfigFile), config.ToJsonString(Indented));

        var map = new JsonObject
        {
            ["additional_special_tokens"] = new JsonArray(additional.Select(t => (JsonNode)JsonValue.Create(t)).ToArray()),
            ["eos_token"] = eos,
            ["pad_token"] = pad,
        };
        if (bos is not null)
            map["bos_token"] = bos;
        File.WriteAllText(Path.Combine(directory, SpecialTokensMapFile), map.ToJsonString(Indented));
    }

    /// <summary>
    /// Loads a folder: <c>tokenizer.json</c> when present, otherwise <c>vocab.json</c> + <c>merges.txt</c>;
    /// roles and chat template come from <c>tokenizer_config.json</c> / <c>special_tokens_map.json</c>.
    /// </summary>
    /// <exception cref="FileNotFoundException">No tokenizer files in the folder.</exception>
    /// <exception cref="InvalidDataException">The files are not a byte-level BPE tokenizer.</exception>
    public static HfBpeTokenizer Load(string directory)
    {
        var config = ReadJson(Path.Combine(directory, TokenizerConfigFile)) ?? new JsonObject();
        var map = ReadJson(Path.Combine(directory, SpecialTokensMapFile)) ?? new JsonObject();
        var model = ReadModel(directory, config);

        string? Role(string name) => TokenText(config[name]) ?? TokenText(map[name]);
        string eos = Role("eos_token") ?? FirstSpecial(model, BpeModel.ImEnd, BpeModel.EndOfText)
            ?? throw new InvalidDataException($"{directory}: no eos_token and no <|im_end|> or <|endoftext|> token.");
        string pad = Role("pad_token") ?? FirstSpecial(model, BpeModel.Pad) ?? eos;
        string? bos = Role("bos_token");
        var template = ChatTemplate.FromJinja(ChatTemplateText(config["chat_template"]));
        int maxLength = config["model_max_length"] is JsonValue v && v.TryGetValue(out double max) ? (int)Math.Min(max, int.MaxValue) : 2048;
        return new HfBpeTokenizer(model, eos, pad, bos, template, maxLength);
    }

    /// <summary>Reads vocabulary, merges, added tokens and pre-tokenizer regex from the folder.</summary>
    public static BpeModel ReadModel(string directory) =>
        ReadModel(directory, ReadJson(Path.Combine(directory, TokenizerConfigFile)) ?? new JsonObject());

    private static BpeModel ReadModel(string directory, JsonObject config)
    {
        string tokenizerJsonPath = Path.Combine(directory, TokenizerJsonFile);
        if (File.Exists(tokenizerJsonPath))
            return ParseTokenizerJson(ReadJson(tokenizerJsonPath)!, tokenizerJsonPath);

        string vocabPath = Path.Combine(directory, VocabFile), mergesPath = Path.Combine(directory, MergesFile);
        if (!File.Exists(vocabPath) || !File.Exists(mergesPath))
            throw new FileNotFoundException($"{directory} has neither {TokenizerJsonFile} nor {VocabFile} + {MergesFile}.");

        var vocabulary = ParseVocabulary(ReadJson(vocabPath)!, vocabPath);
        var merges = new List<(string, string)>();
        int lineNumber = 0;
        foreach (string line in File.ReadLines(mergesPath))
        {
            lineNumber++;
            if (line.Length == 0 || (lineNumber == 1 && line.StartsWith("#version", StringComparison.Ordinal)))
                continue;
            merges.Add(SplitMerge(line, $"{mergesPath} line {lineNumber}"));
        }

        var specials = new Dictionary<string, int>(StringComparer.Ordinal);
        if (config["added_tokens_decoder"] is JsonObject decoder)
        {
            foreach (var (id, token) in decoder)
                if (TokenText(token) is { } content)
                    specials[content] = int.Parse(id);
        }
        else
        {
            foreach (var (token, id) in vocabulary)
                if (token.StartsWith("<|", StringComparison.Ordinal) && token.EndsWith("|>", StringComparison.Ordinal))
                    specials[token] = id;
        }

        return new BpeModel(vocabulary, merges, specials);
    }

    private static BpeModel ParseTokenizerJson(JsonObject root, string path)
    {
        if (root["model"] is not JsonObject model || (string?)model["type"] is not ("BPE" or null))
            throw new InvalidDataException($"{path}: model.type must be BPE.");
        var vocabulary = ParseVocabulary(model["vocab"] as JsonObject ?? throw new InvalidDataException($"{path}: model.vocab missing."), path);
        var merges = (model["merges"] as JsonArray ?? []).Select((m, i) => m switch
        {
            JsonArray pair when pair.Count == 2 => ((string)pair[0]!, (string)pair[1]!),
            JsonValue text => SplitMerge((string)text!, $"{path} merge {i}"),
            _ => throw new InvalidDataException($"{path}: merge {i} is neither \"a b\" nor [a, b]."),
        }).ToList();

        var specials = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var added in root["added_tokens"] as JsonArray ?? [])
            specials[(string)added!["content"]!] = (int)added["id"]!;

        return new BpeModel(vocabulary, merges, specials, PreTokenizerPattern(root["pre_tokenizer"], path));
    }

    private static string PreTokenizerPattern(JsonNode? preTokenizer, string path)
    {
        switch ((string?)preTokenizer?["type"])
        {
            case "ByteLevel" when preTokenizer!["use_regex"] is null || (bool)preTokenizer["use_regex"]!:
                return ByteLevel.Gpt2Pattern;
            case "Sequence":
                foreach (var step in preTokenizer!["pretokenizers"] as JsonArray ?? [])
                {
                    if ((string?)step?["type"] == "Split" && (string?)step["pattern"]?["Regex"] is { } pattern)
                        return pattern;
                    if ((string?)step?["type"] == "ByteLevel" && step["use_regex"] is JsonValue useRegex && (bool)useRegex)
                        return ByteLevel.Gpt2Pattern;
                }

                break;
        }

        throw new InvalidDataException($"{path}: unsupported pre_tokenizer; expected ByteLevel or a Split regex followed by ByteLevel.");
    }

    private static Dictionary<string, int> ParseVocabulary(JsonObject vocabulary, string path)
    {
        var result = new Dictionary<string, int>(vocabulary.Count, StringComparer.Ordinal);
        foreach (var (token, id) in vocabulary)
            result[token] = id is JsonValue value && value.TryGetValue(out int number) ? number : throw new InvalidDataException($"{path}: id of \"{token}\" is not an integer.");
        return result;
    }

    private static (string, string) SplitMerge(string line, string where)
    {
        int space = line.IndexOf(' ');
        if (space <= 0 || space == line.Length - 1 || line.IndexOf(' ', space + 1) >= 0)
            throw new InvalidDataException($"{where}: expected two tokens separated by one space, got \"{line}\".");
        return (line[..space], line[(space + 1)..]);
    }

    private static JsonObject ByteLevelNode(bool useRegex, bool trimOffsets = true) => new()
    {
        ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = trimOffsets, ["use_regex"] = useRegex,
    };

    private static JsonObject? ReadJson(string path) =>
        File.Exists(path) ? JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException($"{path} is not a JSON object.") : null;

    /// <summary>A token role is either a string or an AddedToken object with "content".</summary>
    private static string? TokenText(JsonNode? node) => node switch
    {
        JsonValue value when value.TryGetValue(out string? text) => text,
        JsonObject added => (string?)added["content"],
        _ => null,
    };

    /// <summary>chat_template is a string, or a list of named templates of which "default" applies.</summary>
    private static string? ChatTemplateText(JsonNode? node) => node switch
    {
        JsonValue value when value.TryGetValue(out string? text) => text,
        JsonArray named => named.FirstOrDefault(t => (string?)t?["name"] == "default")?["template"]?.GetValue<string>(),
        _ => null,
    };

    private static string? FirstSpecial(BpeModel model, params string[] candidates) => candidates.FirstOrDefault(model.SpecialTokens.ContainsKey);
}
