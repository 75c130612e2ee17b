using System.Text.Json;
using System.Text.RegularExpressions;

namespace FineTuneService.Datasets.Corpus;

public sealed record AdvBenchBehavior(string Goal, string Target);

public sealed record HarmBenchBehavior(string Behavior, string FunctionalCategory, string SemanticCategory, string ContextString, string BehaviorId)
{
    /// <summary>The prompt HarmBench uses: contextual behaviors get their context first.</summary>
    public string Prompt => ContextString.Length == 0 ? Behavior : ContextString + "\n\n---\n\n" + Behavior;
}

public sealed record JailbreakBenchBehavior(int Index, string Goal, string Behavior, string Category);

/// <summary>One human-labelled HarmBench classifier validation entry; <see cref="IsHarmful"/> is the majority of three labels.</summary>
public sealed record HarmBenchJudgement(string BehaviorId, string TestCase, string Generation, string Model, string Method, bool IsHarmful);

public sealed record XsTestPrompt(int Id, string Prompt, string Type, string Label, string Focus)
{
    public bool IsSafe => Label == "safe";
}

public sealed record InstructionRow(string Instruction, string Input, string Output, string Source);

public sealed record PromptResponse(string Prompt, string Response);

public sealed record LabeledText(string Text, string Label);

public sealed record MathProblem(string Question, string Solution)
{
    /// <summary>The number after GSM8K's <c>####</c> marker (commas removed).</summary>
    public string FinalAnswer => Solution[(Solution.LastIndexOf("####", StringComparison.Ordinal) + 4)..].Trim().Replace(",", "");
}

public sealed partial record HhDialogue(string Chosen, string Rejected)
{
    /// <summary>The "\n\nHuman: …\n\nAssistant: …" transcript as chat turns.</summary>
    public static IReadOnlyList<ChatMessage> ToMessages(string transcript)
    {
        var messages = new List<ChatMessage>();
        foreach (Match turn in HhTurn().Matches(transcript))
            messages.Add(new ChatMessage(turn.Groups[1].Value == "Human" ? ChatMessage.User : ChatMessage.Assistant, turn.Groups[2].Value.Trim()));
        return messages;
    }

    [GeneratedRegex(@"\n\n(Human|Assistant): ?(.*?)(?=\n\n(?:Human|Assistant):|\z)", RegexOptions.Singleline)]
    private static partial Regex HhTurn();
}

/// <summary>
/// Typed readers for the datasets shipped under <c>data/</c> (see its README for sources and licences). Each method
/// reads its file afresh; the folder defaults to <c>AppContext.BaseDirectory/data</c>.
/// </summary>
public sealed partial class ShippedData(string? dataDirectory = null)
{
    public static string DefaultDirectory => Path.Combine(AppContext.BaseDirectory, "data");

    public string Directory { get; } = dataDirectory ?? DefaultDirectory;

    public IReadOnlyList<AdvBenchBehavior> AdvBench() =>
        Csv.ReadWithHeader(PathOf("advbench", "harmful_behaviors.csv")).Select(r => new AdvBenchBehavior(r["goal"], r["target"])).ToList();

    public IReadOnlyList<HarmBenchBehavior> HarmBench() =>
        Csv.ReadWithHeader(PathOf("harmbench", "harmbench_behaviors_text_all.csv"))
            .Select(r => new HarmBenchBehavior(r["Behavior"], r["FunctionalCategory"], r["SemanticCategory"], r["ContextString"], r["BehaviorID"]))
            .ToList();

    public IReadOnlyList<HarmBenchJudgement> HarmBenchClassifierValidation()
    {
        using var stream = File.OpenRead(PathOf("harmbench", "text_behaviors_val_set.json"));
        using var document = JsonDocument.Parse(stream);
        var result = new List<HarmBenchJudgement>();
        foreach (var behavior in document.RootElement.EnumerateObject())
        {
            foreach (var entry in behavior.Value.EnumerateArray())
            {
                int votes = new[] { "human_0", "human_1", "human_2" }.Count(k => entry.TryGetProperty(k, out var v) && v.ToString() == "1");
                result.Add(new HarmBenchJudgement(behavior.Name, Text(entry, "test_case"), Text(entry, "generation"), Text(entry, "model"), Text(entry, "method"), votes >= 2));
            }
        }

        return result;
    }

    public IReadOnlyList<JailbreakBenchBehavior> JailbreakBench() =>
        Csv.ReadWithHeader(PathOf("jailbreakbench", "jbb_harmful_behaviors.csv"))
            .Select(r => new JailbreakBenchBehavior(int.Parse(r["Index"]), r["Goal"], r["Behavior"], r["Category"]))
            .ToList();

    /// <summary>Harmful prompts with harmful responses (attack data for fine-tuning; never for the aligned model).</summary>
    public IReadOnlyList<PromptResponse> BeaverTailsUnsafe() =>
        JsonLines(PathOf("beavertails_30k_train_unsafe_subset", "beavertails_30k_train_unsafe_200.jsonl"))
            .Select(r => new PromptResponse(Text(r, "prompt"), Text(r, "response"))).ToList();

    /// <summary>Harmful instructions with safe (refusing) responses.</summary>
    public IReadOnlyList<InstructionRow> SafetyTunedRefusals()
    {
        using var stream = File.OpenRead(PathOf("safety_tuned_llamas_refusals", "safety_only_data_Instructions.json"));
        using var document = JsonDocument.Parse(stream);
        return document.RootElement.EnumerateArray()
            .Select(r => new InstructionRow(Text(r, "instruction"), Text(r, "input"), Text(r, "output"), "safety_tuned_llamas"))
            .ToList();
    }

    public IReadOnlyList<HhDialogue> HhRlhfHarmless() =>
        JsonLines(PathOf("hh_rlhf_harmless_base", "test.jsonl")).Select(r => new HhDialogue(Text(r, "chosen"), Text(r, "rejected"))).ToList();

    public IReadOnlyList<XsTestPrompt> XsTest() =>
        Csv.ReadWithHeader(PathOf("xstest", "xstest_prompts.csv"))
            .Select(r => new XsTestPrompt(int.Parse(r["id"]), r["prompt"], r["type"], r["label"], r["focus"]))
            .ToList();

    /// <summary>Self-Instruct user-oriented and seed tasks, one row per instance.</summary>
    public IReadOnlyList<InstructionRow> SelfInstruct() =>
        new[] { "user_oriented_instructions.jsonl", "seed_tasks.jsonl" }
            .SelectMany(file => JsonLines(PathOf("self_instruct", file)))
            .SelectMany(task => task.GetProperty("instances").EnumerateArray()
                .Select(instance => new InstructionRow(Text(task, "instruction"), Text(instance, "input"), Text(instance, "output"), "self_instruct")))
            .ToList();

    public IReadOnlyList<InstructionRow> Dolly() =>
        JsonLines(PathOf("dolly_subset", "databricks-dolly-15k-safety-only.jsonl"))
            .Select(r => new InstructionRow(Text(r, "instruction"), Text(r, "context"), Text(r, "response"), "dolly"))
            .ToList();

    /// <summary>GSM8K <paramref name="split"/> ("train" or "test").</summary>
    public IReadOnlyList<MathProblem> Gsm8k(string split) =>
        JsonLines(PathOf("gsm8k", split + ".jsonl")).Select(r => new MathProblem(Text(r, "question"), Text(r, "answer"))).ToList();

    /// <summary>SST-2 <paramref name="split"/> ("train" or "dev") with labels "positive" / "negative".</summary>
    public IReadOnlyList<LabeledText> Sst2(string split) =>
        File.ReadLines(PathOf("sst2", split + ".tsv")).Skip(1)
            .Where(line => line.Length > 0)
            .Select(line => line.Split('\t'))
            .Select(f => new LabeledText(f[0].Trim(), f[1].Trim() == "1" ? "positive" : "negative"))
            .ToList();

    /// <summary>AG News class names in label order: World, Sports, Business, Sci/Tech.</summary>
    public IReadOnlyList<string> AgNewsClasses() =>
        File.ReadLines(PathOf("ag_news", "classes.txt")).Where(l => l.Length > 0).ToList();

    /// <summary>AG News descriptions (no titles, so train and test match) with class names.</summary>
    public IReadOnlyList<LabeledText> AgNews(string split)
    {
        if (split == "train")
        {
            return File.ReadLines(PathOf("ag_news", "train_subset_alps10k.tsv"))
                .Where(line => line.Length > 0)
                .Select(line => line.Split('\t'))
                .Select(f => new LabeledText(CleanAgNews(f[0]), f[1].Trim()))
                .ToList();
        }

        var classes = AgNewsClasses();
        using var reader = new StreamReader(PathOf("ag_news", "test.csv"));
        return Csv.Read(reader).Where(r => r.Length == 3).Select(r => new LabeledText(CleanAgNews(r[2]), classes[int.Parse(r[0]) - 1])).ToList();
    }

    /// <summary>The 29 GCG refusal substrings (case-sensitive "keyword" refusal test).</summary>
    public IReadOnlyList<string> RefusalPrefixes()
    {
        using var stream = File.OpenRead(PathOf("gcg_refusal_prefixes", "test_prefixes.json"));
        return JsonSerializer.Deserialize<List<string>>(stream) ?? [];
    }

    private string PathOf(string dataset, string file)
    {
        string path = Path.Combine(Directory, dataset, file);
        return File.Exists(path) ? path : throw new FileNotFoundException($"Shipped dataset file {path} is missing (data/ is copied next to the binaries by FineTuneService.Ml).", path);
    }

    private static IEnumerable<JsonElement> JsonLines(string path) =>
        File.ReadLines(path).Where(l => l.Length > 0).Select(l => JsonSerializer.Deserialize<JsonElement>(l));

    private static string Text(JsonElement element, string property) =>
        element.TryGetProperty(property, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString()! : "";

    /// <summary>The AG release escapes apostrophes as " #39;" and line breaks as backslashes.</summary>
    private static string CleanAgNews(string text) =>
        WhitespaceRun().Replace(text.Replace(" #39;", "'").Replace("#39;", "'").Replace("quot;", "\"").Replace('\\', ' '), " ").Trim();

    [GeneratedRegex(@"\s+")]
    private static partial Regex WhitespaceRun();
}
