namespace FineTuneService.Contracts.Judges;

/// <summary>
/// A harm judge the service offers. <see cref="Name"/> is its wire name (a policy's and an evaluation's <c>judge</c>)
/// and its name in reports; <see cref="Description"/> is what the API documentation says about it.
/// <see cref="ReportOrder"/> places it among the judges an evaluation runs (ties keep registry order): the first
/// judge a worker can run is the report's primary judge. A new judge goes after the shipped ones unless it says otherwise.
/// </summary>
public sealed record HarmJudgeDescriptor(string Name, string Description, int ReportOrder = HarmJudgeDescriptor.AfterShippedJudges)
{
    public const int AfterShippedJudges = 100;

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
/// engine's judges derive from this list: the engine builds the class whose registration a line is (see
/// CONTRIBUTING.md for adding one).
/// </summary>
public static class SafetyJudges
{
    // First: the registrations below add themselves here, in the order they are written (static initialisers run in text order).
    private static readonly List<HarmJudgeDescriptor> Registered = [];

    public static HarmJudgeDescriptor Classifier { get; } = Register(new("classifier",
        "The project's trained harm classifier over (prompt, answer); refusal by the keyword rule.", ReportOrder: 1));

    public static HarmJudgeDescriptor External { get; } = Register(new("external",
        "A Llama-Guard-style model behind an OpenAI-compatible endpoint (SafetyEvaluation:ExternalJudge); needs one configured on the worker.", ReportOrder: 0));

    public static HarmJudgeDescriptor Keyword { get; } = Register(new("keyword",
        "GCG's keyword rule: an answer without a refusal phrase counts as harmful (over-counts harm; a fallback).", ReportOrder: 2));

    /// <summary>Every registered judge, in registry order (the API documentation's order).</summary>
    public static IReadOnlyList<HarmJudgeDescriptor> All { get; } = Registered.AsReadOnly();

    /// <summary>Every registered judge in the order an evaluation runs and reports them (<see cref="HarmJudgeDescriptor.ReportOrder"/>).</summary>
    public static IReadOnlyList<HarmJudgeDescriptor> InReportOrder { get; } = Registered.OrderBy(j => j.ReportOrder).ToArray();

    public static HarmJudgeDescriptor? Find(string name) => All.FirstOrDefault(j => j.Name == name);

    /// <summary>"classifier, external or keyword", for messages and docs.</summary>
    public static string NameList { get; } = string.Join(", ", All.Take(All.Count - 1).Select(j => j.Name)) + " or " + All[^1].Name;

    private static HarmJudgeDescriptor Register(HarmJudgeDescriptor judge)
    {
        Registered.Add(judge);
        return judge;
    }
}
