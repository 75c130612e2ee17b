using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using FineTuneService.Contracts;
using FineTuneService.Contracts.Safety;
using FineTuneService.Ml.Training;

namespace FineTuneService.Research.Benchmarks;

/// <summary>
/// The strategies the benchmark compares, by row name: none, every registered strategy with its default parameters
/// (<c>merge</c> is its linear method), the TIES and PCB merges (<c>merge_ties</c>, <c>merge_pcb</c>), and
/// <c>best</c>, the literature's recommended
/// combination: a fine-tuning-stage defence (projected gradients keep task updates out of the refusal directions) plus
/// Antidote's post-fine-tuning pruning, which its paper shows adds to fine-tuning-stage defences because it does not
/// depend on how the harmful update was learned; and <c>projected_gradients_merge</c>, the same fine-tuning-stage
/// defence with the linear merge in Antidote's place (merging was the strongest single defence of the earlier grid). A row prefixed <c>booster_</c> is the same strategy fine-tuned from the
/// Booster-hardened base (<see cref="SafetyBenchmarkOptions.BoosterBase"/>) instead of the aligned one.
/// </summary>
public static class SafetyBenchmarkStrategies
{
    public const string Best = "best";
    public const string MergeTies = "merge_ties";
    public const string MergePcb = "merge_pcb";
    public const string ProjectedGradientsMerge = "projected_gradients_merge";

    public static IReadOnlyDictionary<string, SafetyPlan> Plans { get; } = new Dictionary<string, SafetyPlan>(
        [
            KeyValuePair.Create(SafetyStrategyRegistry.None, SafetyPlan.None),
            .. SafetyStrategies.Registry.All.Select(s => KeyValuePair.Create(s.Name, SafetyPlan.Of(s.Defaults))),
            KeyValuePair.Create(MergeTies, SafetyPlan.Of(new MergeParams(Method: MergeMethods.Ties))),
            KeyValuePair.Create(MergePcb, SafetyPlan.Of(new MergeParams(Method: MergeMethods.Pcb))),
            KeyValuePair.Create(Best, SafetyPlan.Of(new ProjectedGradientsParams(), new AntidoteParams())),
            KeyValuePair.Create(ProjectedGradientsMerge, SafetyPlan.Of(new ProjectedGradientsParams(), new MergeParams())),
        ], StringComparer.Ordinal);

    /// <summary>Prefix of the rows fine-tuned from the hardened base: <c>booster_none</c>, <c>booster_best</c>, ….</summary>
    public const string BoosterPrefix = "booster_";

    /// <summary>The strategies on the aligned base (the keys of <see cref="Plans"/>, which the fingerprint hashes).</summary>
    public static IReadOnlyList<string> All { get; } = [.. Plans.Keys];

    /// <summary>Every row name, in table order: the strategies, then each of them on the hardened base.</summary>
    public static IReadOnlyList<string> Rows { get; } = [.. All, .. All.Select(s => BoosterPrefix + s)];

    public static bool IsBooster(string row) => row.StartsWith(BoosterPrefix, StringComparison.Ordinal);

    /// <summary>The strategy a row runs: its name without the <c>booster_</c> prefix.</summary>
    public static string StrategyOf(string row) => IsBooster(row) ? row[BoosterPrefix.Length..] : row;

    public static bool IsKnown(string row) => Plans.ContainsKey(StrategyOf(row));

    /// <summary>
    /// Named plans from a JSON object, each in the service's <c>safety</c> shape:
    /// <c>{"ties_d50": {"strategy": "merge", "params": {"merge": {"method": "ties", "density": 0.5}}}}</c>.
    /// </summary>
    /// <remarks>Parameters are checked with the rest of the options (<see cref="SafetyBenchmarkOptions.Errors"/>).</remarks>
    /// <exception cref="FormatException">Not such an object, or a plan the service cannot read (with its name and <c>param</c>).</exception>
    public static IReadOnlyDictionary<string, SafetyPlan> ParsePlans(string json)
    {
        JsonObject root;
        try
        {
            root = JsonNode.Parse(json) as JsonObject ?? throw new FormatException("plans must be a JSON object of named safety plans.");
        }
        catch (JsonException e)
        {
            throw new FormatException($"plans are not JSON: {e.Message}");
        }
        var plans = new Dictionary<string, SafetyPlan>(StringComparer.Ordinal);
        foreach (var (name, node) in root)
        {
            if (node is not JsonObject safety) throw new FormatException($"plan '{name}' must be an object like a job's safety field.");
            try
            {
                plans[name] = SafetyPlan.FromRequest(safety);
            }
            catch (ContractViolation e)
            {
                throw new FormatException($"plan '{name}': {e.Message} ({e.Param})");
            }
        }
        return plans;
    }

    /// <summary>Whether <paramref name="name"/> can name a plan of <c>--plans</c>: a row name without the booster prefix.</summary>
    public static bool IsPlanName(string name) => Regex.IsMatch(name, "^[a-z0-9_]+$") && !IsBooster(name);

    public static SafetyPlan Plan(string row) => Plans.TryGetValue(StrategyOf(row), out var plan)
        ? plan
        : throw new ArgumentException($"Unknown benchmark strategy '{row}'; expected one of {string.Join(", ", All)}, each optionally prefixed {BoosterPrefix}.", nameof(row));
}

/// <summary>
/// Setting of the safety benchmark. The grid is <see cref="Ratios"/> × <see cref="Strategies"/> × <see cref="Seeds"/>;
/// everything else is shared by every cell and goes into the <see cref="Fingerprint"/> that guards resuming.
/// </summary>
public sealed record SafetyBenchmarkOptions
{
    /// <summary>Fine-tuning rows n (task rows plus harmful rows).</summary>
    public int Rows { get; init; } = 400;
    public IReadOnlyList<double> Ratios { get; init; } = [0, 0.05, 0.1, 0.2];
    public IReadOnlyList<string> Strategies { get; init; } = SafetyBenchmarkStrategies.All;
    /// <summary>
    /// A model folder written by <c>fts harden</c> from the base, which the <c>booster_*</c> rows fine-tune. Its weights'
    /// SHA-256 is checked on resume beside the <see cref="Fingerprint"/> (not in it), so booster rows can be added to a
    /// grid that ran without them.
    /// </summary>
    public string? BoosterBase { get; init; }
    /// <summary>Seeds 1..Seeds; a seed picks the rows, the data order and the strategies' random choices.</summary>
    public int Seeds { get; init; } = 3;

    /// <summary>
    /// Rows beyond the catalogue, named plans in the service's <c>safety</c> shape (<c>--plans FILE</c>), e.g. a merge at
    /// another density. <see cref="Strategies"/> names them like catalogue rows, with or without the booster prefix.
    /// Like every row they are checked by their plan on resume, not by the fingerprint.
    /// </summary>
    [JsonIgnore]
    public IReadOnlyDictionary<string, SafetyPlan> Plans { get; init; } = new Dictionary<string, SafetyPlan>();

    /// <summary>The plan <paramref name="row"/> runs: one of <see cref="Plans"/>, else the catalogue's.</summary>
    public SafetyPlan PlanOf(string row) =>
        Plans.TryGetValue(SafetyBenchmarkStrategies.StrategyOf(row), out var plan) ? plan : SafetyBenchmarkStrategies.Plan(row);

    private bool IsKnown(string row) => SafetyBenchmarkStrategies.IsKnown(row) || Plans.ContainsKey(SafetyBenchmarkStrategies.StrategyOf(row));

    public int Epochs { get; init; } = 1;
    public int BatchSize { get; init; } = 8;
    public double LearningRate { get; init; } = 2e-4;
    public int MaxSequenceLength { get; init; } = 256;

    /// <summary>Held-out harmful prompts the HS is measured on (a fixed spread-out subset of the never-trained share).</summary>
    public int HarmfulPrompts { get; init; } = 100;
    /// <summary>
    /// JSONL (<c>{"prompt", "category"}</c>) of harmful prompts that replaces the shipped held-out set (all of its
    /// prompts are evaluated); the harmful training mix then also excludes every one of them.
    /// </summary>
    public string? HarmfulPromptsFile { get; init; }
    /// <summary>JSONL of safe prompts that replaces the shipped XSTest subset for over-refusal (all of them).</summary>
    public string? SafePromptsFile { get; init; }
    public int XsTestPrompts { get; init; } = 100;
    /// <summary>The task of the fine-tuning rows and of FA: a <see cref="SafetyBenchmarkTask"/> name.</summary>
    public string Task { get; init; } = SafetyBenchmarkTask.Sst2.Name;
    [JsonIgnore]
    public SafetyBenchmarkTask BenchmarkTask => SafetyBenchmarkTask.Named(Task);
    /// <summary>Prompts of the task's evaluation split that FA is measured on (SST-2 dev unless <see cref="Task"/> says otherwise).</summary>
    public int Sst2DevPrompts { get; init; } = 200;
    /// <summary>New tokens for harmful and XSTest answers; FA needs only <see cref="AccuracyMaxNewTokens"/>.</summary>
    public int MaxNewTokens { get; init; } = 32;
    public int AccuracyMaxNewTokens { get; init; } = 4;
    /// <summary>Rows of each shipped safety set given to the strategies (as the worker's default).</summary>
    public int SafetyExamples { get; init; } = 64;

    /// <summary>Torch intra-op threads (0 leaves torch's default).</summary>
    public int Threads { get; init; }

    /// <summary>Fine-tuning compute: fp32, or bf16 with fp32 master weights (what <c>Worker:CpuMixedPrecision=Auto</c> picks on a CPU where bf16 pays). Evaluation stays fp32.</summary>
    [JsonConverter(typeof(JsonStringEnumConverter<TrainingPrecision>))]
    public TrainingPrecision Precision { get; init; } = TrainingPrecision.Float32;

    public IEnumerable<string> Errors()
    {
        if (Rows < 1) yield return "rows must be >= 1.";
        if (Ratios.Count == 0 || Ratios.Any(r => !(r is >= 0 and <= 1))) yield return "ratios must be in [0, 1].";
        foreach (var s in Strategies.Where(s => !IsKnown(s)))
            yield return $"unknown strategy '{s}' (expected {string.Join(", ", [.. SafetyBenchmarkStrategies.All, .. Plans.Keys])}, each optionally prefixed {SafetyBenchmarkStrategies.BoosterPrefix}).";
        foreach (var (name, plan) in Plans)
        {
            if (!SafetyBenchmarkStrategies.IsPlanName(name))
                yield return $"plan name '{name}' must be lower-case letters, digits and '_', and not start with {SafetyBenchmarkStrategies.BoosterPrefix}.";
            else if (SafetyBenchmarkStrategies.IsKnown(name))
                yield return $"plan name '{name}' is a catalogue row already; name the plan otherwise.";
            string? violation = null;
            try
            {
                plan.Validate(ModelFacts.Unknown);
            }
            catch (ContractViolation e)
            {
                violation = e.Message;
            }
            if (violation is not null) yield return $"plan '{name}': {violation}";
        }
        if (BoosterBase is null && Strategies.Any(SafetyBenchmarkStrategies.IsBooster))
            yield return $"the {SafetyBenchmarkStrategies.BoosterPrefix}* rows need a hardened base (--booster-base, a folder written by fts harden).";
        if (BoosterBase is { } booster && !File.Exists(Path.Combine(booster, "model.safetensors")))
            yield return $"booster base {booster} is not a model folder (no model.safetensors).";
        if (Seeds < 1) yield return "seeds must be >= 1.";
        if (Epochs < 1 || BatchSize < 1 || !(LearningRate > 0)) yield return "epochs, batch size and learning rate must be positive.";
        if (HarmfulPrompts < 1 || XsTestPrompts < 1 || Sst2DevPrompts < 1) yield return "evaluation sizes must be >= 1.";
        if (SafetyBenchmarkTask.Find(Task) is null) yield return $"task must be one of {string.Join(", ", SafetyBenchmarkTask.All.Select(t => t.Name))}, not '{Task}'.";
        if (HarmfulPromptsFile is { } harmful && !File.Exists(harmful)) yield return $"harmful prompts file {harmful} does not exist.";
        if (SafePromptsFile is { } safe && !File.Exists(safe)) yield return $"safe prompts file {safe} does not exist.";
        if (Precision is not (TrainingPrecision.Float32 or TrainingPrecision.BFloat16)) yield return "precision must be fp32 or bf16.";
    }

    /// <summary>
    /// Hash of everything a cell's numbers depend on apart from its (ratio, strategy, seed) key and its row's plan: the
    /// shared settings, the base model's weights and the harm classifier's weights. Cells stored under another
    /// fingerprint are never reused. Each row's plan is checked on its own (<see cref="SafetyBenchmarkResults.RowPlans"/>),
    /// so a row added to <see cref="SafetyBenchmarkStrategies.Plans"/> does not invalidate a grid that is under way.
    /// </summary>
    public string Fingerprint(string baseModelHash, string judgeHash)
    {
        var shared = new
        {
            Rows, Epochs, BatchSize, LearningRate, MaxSequenceLength, HarmfulPrompts, XsTestPrompts, Sst2DevPrompts,
            MaxNewTokens, AccuracyMaxNewTokens, SafetyExamples,
            HarmfulPromptsSha256 = FileHash(HarmfulPromptsFile), SafePromptsSha256 = FileHash(SafePromptsFile),
            baseModelHash, judgeHash,
        };
        var json = JsonSerializer.Serialize(shared);
        // fp32 runs keep the fingerprints they had before the setting existed, so their stored cells stay resumable.
        if (Precision != TrainingPrecision.Float32) json += $"|precision={Precision}";
        if (Task != SafetyBenchmarkTask.Sst2.Name) json += $"|task={Task}";
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(json)))[..16];
    }

    /// <summary>Prompt files count by content, not by path: another file under the same name is another benchmark.</summary>
    private static string? FileHash(string? path) => path is null ? null : Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));
}
