using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Nodes;
using FineTuneService.Ml.Evaluation.Judges;
using FineTuneService.Ml.Evaluation.PromptSets;

namespace FineTuneService.Ml.Evaluation.Classifier;

/// <summary>Where the classifier's source datasets live, relative to a data root (the project's shipped copies).</summary>
public sealed record HarmClassifierDataFiles
{
    public string BeaverTailsUnsafe { get; init; } = "beavertails_30k_train_unsafe_subset/beavertails_30k_train_unsafe_200.jsonl";
    public string AdvBenchHarmfulStrings { get; init; } = "advbench/harmful_strings.csv";
    public string SafetyTunedRefusals { get; init; } = "safety_tuned_llamas_refusals/safety_only_data_Instructions.json";
    public string AdvBenchBehaviors { get; init; } = "advbench/harmful_behaviors.csv";
    public string HhRlhfHarmlessBase { get; init; } = "hh_rlhf_harmless_base/test.jsonl.gz";
    // Harmless informative answers to benign prompts are off by default: with them the classifier learned "long
    // informative text = harmless", which is what compliant harmful generations look like (HarmBench-validation F1
    // 0.46 with Dolly + self-instruct, 0.65 without; see docs/benchmarks/classifier). Use WithBenignAnswers() to add them.
    public string? Dolly { get; init; }
    public string? SelfInstructSeed { get; init; }
    public string? SelfInstructUserOriented { get; init; }

    /// <summary>Adds Dolly (safety-topic subset) and self-instruct answers as harmless pairs.</summary>
    public HarmClassifierDataFiles WithBenignAnswers() => this with
    {
        Dolly = "dolly_subset/databricks-dolly-15k-safety-only.jsonl",
        SelfInstructSeed = "self_instruct/seed_tasks.jsonl",
        SelfInstructUserOriented = "self_instruct/user_oriented_instructions.jsonl",
    };
    public string Sst2Train { get; init; } = "sst2/train.tsv";
    public string AgNewsTrain { get; init; } = "ag_news/train_subset_alps10k.tsv";
    public string Gsm8kTrain { get; init; } = "gsm8k/train.jsonl";
    public string HarmBenchBehaviors { get; init; } = "harmbench/harmbench_behaviors_text_all.csv";
    public string HarmBenchClassifierValidation { get; init; } = "harmbench/text_behaviors_val_set.json";
}

/// <summary>Training pairs split into what the classifier learns from and an in-distribution held-out part.</summary>
public sealed record HarmClassifierCorpus(IReadOnlyList<LabelledPair> Train, IReadOnlyList<LabelledPair> HeldOut)
{
    /// <summary>One pair in <see cref="HeldOutModulus"/> (chosen by a stable content hash) is held out.</summary>
    public const int HeldOutModulus = 5;

    private const int Sst2Rows = 400, AgNewsRows = 400, Gsm8kRows = 300, RefusedPromptsWithTaskAnswers = 500;

    /// <summary>
    /// Harmful: BeaverTails unsafe responses, AdvBench harmful strings and compliance openings, compliant HH-RLHF
    /// rejected answers. Harmless: safety-tuned refusals (optionally Dolly and self-instruct answers) and hard negatives — short task outputs (SST-2 label words, AG News class names,
    /// GSM8K answers) both after their own prompts and after harmful prompts, since a fine-tuned task model answering
    /// "positive" to a harmful request has not produced harm.
    /// </summary>
    public static HarmClassifierCorpus Load(string dataRoot, RefusalKeywords refusalKeywords, HarmClassifierDataFiles? files = null, int seed = 1234)
    {
        files ??= new HarmClassifierDataFiles();
        string PathOf(string relative) => Path.Combine(dataRoot, relative);
        var random = new Random(seed);
        var pairs = new List<LabelledPair>();

        foreach (var row in ReadJsonLines(PathOf(files.BeaverTailsUnsafe)))
            pairs.Add(new(Text(row, "prompt"), Text(row, "response"), true, "beavertails_unsafe"));

        var harmfulStrings = CsvTable.Load(PathOf(files.AdvBenchHarmfulStrings));
        var target = harmfulStrings.Column("target");
        foreach (var (_, fields) in harmfulStrings.Rows) pairs.Add(new("", fields[target], true, "advbench_harmful_strings"));

        var behaviors = CsvTable.Load(PathOf(files.AdvBenchBehaviors));
        var (goal, opening) = (behaviors.Column("goal"), behaviors.Column("target"));
        foreach (var (_, fields) in behaviors.Rows) pairs.Add(new(fields[goal], fields[opening], true, "advbench_compliance_opening"));

        // HH-RLHF harmless-base: the rejected final turn is the more harmful one. Only those that differ from the chosen
        // turn, do not refuse (no GCG keyword) and say something (15+ words) are kept as harmful — weak labels.
        foreach (var row in ReadJsonLines(PathOf(files.HhRlhfHarmlessBase)))
        {
            var (prompt, rejected) = LastExchange(Text(row, "rejected"));
            var (_, chosen) = LastExchange(Text(row, "chosen"));
            if (rejected != chosen && !refusalKeywords.IsRefusal(rejected) && rejected.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length >= 15)
                pairs.Add(new(prompt, rejected, true, "hh_rlhf_rejected_compliant"));
        }

        var refusals = ReadJsonArray(PathOf(files.SafetyTunedRefusals));
        var harmfulPrompts = new List<string>();
        foreach (var row in refusals)
        {
            var prompt = Join(Text(row, "instruction"), Text(row, "input"));
            harmfulPrompts.Add(prompt);
            pairs.Add(new(prompt, Text(row, "output"), false, "safety_tuned_refusals"));
        }

        if (files.Dolly is not null)
            foreach (var row in ReadJsonLines(PathOf(files.Dolly)))
            pairs.Add(new(Join(Text(row, "instruction"), Text(row, "context")), Text(row, "response"), false, "dolly"));

        foreach (var file in new[] { files.SelfInstructSeed, files.SelfInstructUserOriented }.OfType<string>())
            foreach (var row in ReadJsonLines(PathOf(file)))
                foreach (var instance in row["instances"]!.AsArray())
                    pairs.Add(new(Join(Text(row, "instruction"), Text(instance!, "input")), Text(instance!, "output"), false, "self_instruct"));

        var taskAnswers = new List<string>();
        foreach (var (sentence, label) in Sample(ReadTsv(PathOf(files.Sst2Train), hasHeader: true), Sst2Rows, random))
        {
            var word = label == "1" ? "positive" : "negative";
            taskAnswers.Add(word);
            pairs.Add(new($"Classify the sentiment of the sentence as positive or negative.\n{sentence}", Variant(word, random), false, "sst2_label"));
        }
        foreach (var (text, label) in Sample(ReadTsv(PathOf(files.AgNewsTrain), hasHeader: false), AgNewsRows, random))
        {
            taskAnswers.Add(label);
            pairs.Add(new($"Classify the news article as World, Sports, Business or Sci/Tech.\n{text}", Variant(label, random), false, "ag_news_label"));
        }
        foreach (var row in Sample(ReadJsonLines(PathOf(files.Gsm8kTrain)).ToList(), Gsm8kRows, random))
        {
            var answer = Text(row, "answer");
            var final = answer[(answer.LastIndexOf("####", StringComparison.Ordinal) + 4)..].Trim();
            taskAnswers.Add(final);
            pairs.Add(new(Text(row, "question"), random.Next(2) == 0 ? answer : $"#### {final}", false, "gsm8k_answer"));
        }
        for (var i = 0; i < RefusedPromptsWithTaskAnswers; i++)
        {
            var prompt = harmfulPrompts[random.Next(harmfulPrompts.Count)];
            var answer = i % 10 == 0 ? "" : Variant(taskAnswers[random.Next(taskAnswers.Count)], random);
            pairs.Add(new(prompt, answer, false, "harmful_prompt_task_answer"));
        }

        var heldOut = pairs.Where(IsHeldOut).ToList();
        return new HarmClassifierCorpus(pairs.Where(p => !IsHeldOut(p)).ToList(), heldOut);
    }

    /// <summary>Stable membership of the in-distribution held-out part (used by tests to pick unseen rows).</summary>
    public static bool IsHeldOut(LabelledPair pair) =>
        HashedTextFeatures.Fnv1a(pair.Source + "\n" + pair.Prompt + "\n" + pair.Response) % HeldOutModulus == 0;

    /// <summary>
    /// HarmBench's human-labelled classifier validation set: the behavior as prompt, the model generation as response,
    /// harmful when most of the three annotators said so. Validation only — never train on it.
    /// </summary>
    public static IReadOnlyList<LabelledPair> LoadHarmBenchValidation(string dataRoot, HarmClassifierDataFiles? files = null)
    {
        files ??= new HarmClassifierDataFiles();
        var behaviors = CsvTable.Load(Path.Combine(dataRoot, files.HarmBenchBehaviors));
        var (idColumn, behaviorColumn) = (behaviors.Column("BehaviorID"), behaviors.Column("Behavior"));
        var behaviorText = behaviors.Rows.ToDictionary(r => r.Fields[idColumn], r => r.Fields[behaviorColumn]);

        var path = Path.Combine(dataRoot, files.HarmBenchClassifierValidation);
        var root = JsonNode.Parse(File.ReadAllText(path))?.AsObject() ?? throw new InvalidDataException($"{path}: expected a JSON object.");
        var pairs = new List<LabelledPair>();
        foreach (var (behaviorId, entries) in root)
        {
            foreach (var entry in entries!.AsArray())
            {
                // A few validation behaviors are missing from the behaviors file (renamed upstream); their test case is the prompt then.
                var prompt = behaviorText.TryGetValue(behaviorId, out var text) ? text : Text(entry!, "test_case");
                var votes = new[] { "human_0", "human_1", "human_2" }.Count(k => entry![k]!.GetValue<int>() == 1);
                pairs.Add(new(prompt, Text(entry!, "generation"), votes >= 2, "harmbench_val"));
            }
        }
        return pairs;
    }

    private static string Variant(string answer, Random random) => (answer.Length == 0 ? 0 : random.Next(4)) switch
    {
        0 => answer,
        1 => char.ToUpperInvariant(answer[0]) + answer[1..],
        2 => answer + ".",
        _ => $"The answer is {answer}.",
    };

    private static IEnumerable<T> Sample<T>(IReadOnlyList<T> rows, int count, Random random)
    {
        var indices = Enumerable.Range(0, rows.Count).ToArray();
        random.Shuffle(indices);
        return indices.Take(count).Select(i => rows[i]);
    }

    /// <summary>Last human turn and the assistant's answer of an HH-RLHF "\n\nHuman: … \n\nAssistant: …" dialogue.</summary>
    private static (string Prompt, string Response) LastExchange(string dialogue)
    {
        const string human = "\n\nHuman:", assistant = "\n\nAssistant:";
        var answerAt = dialogue.LastIndexOf(assistant, StringComparison.Ordinal);
        if (answerAt < 0) return ("", dialogue.Trim());
        var promptAt = dialogue.LastIndexOf(human, answerAt, StringComparison.Ordinal);
        var prompt = promptAt < 0 ? "" : dialogue[(promptAt + human.Length)..answerAt];
        return (prompt.Trim(), dialogue[(answerAt + assistant.Length)..].Trim());
    }

    private static string Join(string instruction, string input) =>
        string.IsNullOrWhiteSpace(input) ? instruction : $"{instruction}\n{input}";

    private static string Text(JsonNode node, string key) => node[key]?.GetValue<string>() ?? "";

    private static List<(string Text, string Label)> ReadTsv(string path, bool hasHeader) =>
        File.ReadLines(path).Skip(hasHeader ? 1 : 0)
            .Select(line => line.Split('\t'))
            .Where(parts => parts.Length >= 2)
            .Select(parts => (parts[0].Trim(), parts[^1].Trim()))
            .ToList();

    private static IEnumerable<JsonNode> ReadJsonLines(string path)
    {
        Stream stream = File.OpenRead(path);
        if (path.EndsWith(".gz", StringComparison.Ordinal)) stream = new GZipStream(stream, CompressionMode.Decompress);
        using var reader = new StreamReader(stream);
        var lineNumber = 0;
        while (reader.ReadLine() is { } line)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonNode? node;
            try { node = JsonNode.Parse(line); }
            catch (JsonException e) { throw new InvalidDataException($"{path}:{lineNumber}: invalid JSON ({e.Message})."); }
            yield return node ?? throw new InvalidDataException($"{path}:{lineNumber}: empty JSON value.");
        }
    }

    private static JsonArray ReadJsonArray(string path) =>
        JsonNode.Parse(File.ReadAllText(path))?.AsArray() ?? throw new InvalidDataException($"{path}: expected a JSON array.");
}
