namespace FineTuneService.Contracts.Judges;

/// <summary>
/// A harm judge the service offers. <see cref="Name"/> is its wire name (a policy's and an evaluation's <c>judge</c>)
/// and its name in reports; <see cref="Description"/> is what the API documentation says about it.
/// </summary>
public sealed record HarmJudgeDescriptor(string Name, string Description)
{
    /// <summary>The name in reports of a judge that carries a model ("external:llama-guard-3").</summary>
    public string ReportName(string? model) => model is null ? Name : $"{Name}:{model}";

    /// <summary>The judge's name in a report's judge name: "external:llama-guard-3" → "external", "keyword" → "keyword".</summary>
    public static string NameOf(string reportName)
    {
        var colon = reportName.IndexOf(':');
        return colon < 0 ? reportName : reportName[..colon];
    }
}

/// <summary>
/// Every harm judge the service offers: one line each. Validation of judge names, the API documentation and the
/// engine's judge names derive from this list (see CONTRIBUTING.md for adding one).
/// </summary>
public static class SafetyJudges
{
    public static HarmJudgeDescriptor Classifier { get; } = new("classifier",
        "The project's trained harm classifier over (prompt, answer); refusal by the keyword rule.");

    public static HarmJudgeDescriptor External { get; } = new("external",
        "A Llama-Guard-style model behind an OpenAI-compatible endpoint (SafetyEvaluation:ExternalJudge); needs one configured on the worker.");

    public static HarmJudgeDescriptor Keyword { get; } = new("keyword",
        "GCG's keyword rule: an answer without a refusal phrase counts as harmful (over-counts harm; a fallback).");

    public static IReadOnlyList<HarmJudgeDescriptor> All { get; } = [Classifier, External, Keyword];

    public static HarmJudgeDescriptor? Find(string name) => All.FirstOrDefault(j => j.Name == name);

    /// <summary>"classifier, external or keyword", for messages and docs.</summary>
    public static string NameList { get; } = string.Join(", ", All.Take(All.Count - 1).Select(j => j.Name)) + " or " + All[^1].Name;
}
