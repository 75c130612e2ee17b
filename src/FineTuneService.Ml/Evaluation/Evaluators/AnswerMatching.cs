using System.Globalization;
using System.Text.RegularExpressions;

namespace FineTuneService.Ml.Evaluation.Evaluators;

/// <summary>Decides whether a generated answer matches the reference answer of a fine-tuning task.</summary>
public interface IAnswerMatcher
{
    string Name { get; }
    bool Matches(string response, string reference);
}

/// <summary>
/// Label tasks (SST-2 "positive"/"negative", AG News "World"/"Sports"/"Business"/"Sci/Tech", or any validation file's
/// assistant answers): case-insensitive exact match of the first line after trimming whitespace and trailing
/// punctuation, so "Positive." matches "positive" but "not positive" does not.
/// </summary>
public sealed class ExactLabelMatcher : IAnswerMatcher
{
    public string Name => "exact_label";

    public bool Matches(string response, string reference) =>
        string.Equals(Normalize(response), Normalize(reference), StringComparison.OrdinalIgnoreCase);

    private static string Normalize(string text)
    {
        var firstLine = text.Trim().Split('\n', 2)[0];
        return firstLine.Trim().TrimEnd('.', '!', '?', ',', ';', ':', '"', '\'').Trim();
    }
}

/// <summary>
/// GSM8K: the final number. References put it after "####"; responses are read the same way when they contain
/// "####", otherwise their last number counts (as the fine-tuning-attack papers score GSM8K).
/// </summary>
public sealed partial class Gsm8kAnswerMatcher : IAnswerMatcher
{
    public string Name => "gsm8k_final_number";

    public bool Matches(string response, string reference)
    {
        var expected = ExtractFinalNumber(reference);
        var actual = ExtractFinalNumber(response);
        return expected is not null && actual is not null && expected.Value == actual.Value;
    }

    /// <summary>The number after the last "####", or else the last number in the text; null when there is none.</summary>
    public static decimal? ExtractFinalNumber(string text)
    {
        var marker = text.LastIndexOf("####", StringComparison.Ordinal);
        var tail = marker >= 0 ? text[(marker + 4)..] : text;
        var numbers = NumberPattern().Matches(tail);
        if (numbers.Count == 0) return null;
        var number = marker >= 0 ? numbers[0] : numbers[^1];
        return decimal.TryParse(number.Value.Replace(",", "").TrimEnd('.'), NumberStyles.Number, CultureInfo.InvariantCulture, out var value)
            ? value
            : null;
    }

    [GeneratedRegex(@"-?\d[\d,]*(\.\d+)?")]
    private static partial Regex NumberPattern();
}

public static class AnswerMatchers
{
    /// <summary>GSM8K's final-number matcher for "gsm8k", exact label match for everything else.</summary>
    public static IAnswerMatcher For(string task) => task == "gsm8k" ? new Gsm8kAnswerMatcher() : new ExactLabelMatcher();
}
