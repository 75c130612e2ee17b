namespace FineTuneService.Ml.Safety.Strategies;

internal static class SafetyParams
{
    /// <summary>Returns <paramref name="options"/> or throws one <see cref="ArgumentException"/> listing every problem.</summary>
    public static T Require<T>(T options, IEnumerable<string> errors, string strategy)
    {
        var problems = errors.ToArray();
        return problems.Length == 0 ? options : throw new ArgumentException($"Invalid {strategy} parameters: {string.Join(" ", problems)}");
    }
}
