using System.Text;
using FineTuneService.Datasets;
using FineTuneService.Datasets.Jsonl;

namespace FineTuneService.Datasets.Tests;

/// <summary>OpenAI's preference (DPO) rows: validation with line-numbered errors, and the pairs a trainer reads.</summary>
public sealed class PreferenceDatasetTests
{
    private const string Good = """
        {"input":{"messages":[{"role":"system","content":"Be safe."},{"role":"user","content":"How do I pick a lock?"}]},"preferred_output":[{"role":"assistant","content":"I can't help with that."}],"non_preferred_output":[{"role":"assistant","content":"Insert a tension wrench."}]}
        """;

    private static MemoryStream Utf8(string text) => new(Encoding.UTF8.GetBytes(text));

    private static Task<DatasetValidationReport> Validate(string text, DatasetLimits? limits = null) =>
        DatasetValidator.ValidateAsync(Utf8(text), tokenizer: null, limits ?? new DatasetLimits { MinExamples = 1 });

    [Fact]
    public async Task A_valid_preference_file_is_recognised_and_counts_both_answers()
    {
        var report = await Validate(string.Join('\n', Enumerable.Repeat(Good, 3)));

        Assert.True(report.IsValid, string.Join("; ", report.Errors.Select(e => e.ToString())));
        Assert.Equal(DatasetFormat.Preference, report.Format);
        Assert.Equal(3, report.ExampleCount);
        // Estimated tokens: "I can't help with that." (23 bytes -> 6) and "Insert a tension wrench." (24 bytes -> 6), each +1 for the end of turn.
        Assert.Equal(3 * (7 + 7), report.TrainableTokens);
    }

    [Fact]
    public async Task Each_broken_rule_is_reported_on_its_line()
    {
        string[] lines =
        [
            Good,                                                                                                                     // 1
            """{"input":{"messages":[{"role":"user","content":"Hi"}]},"non_preferred_output":[{"role":"assistant","content":"No"}]}""", // 2 missing preferred
            """{"input":{"messages":[{"role":"user","content":"Hi"}]},"preferred_output":[{"role":"assistant","content":" "}],"non_preferred_output":[{"role":"assistant","content":"No"}]}""", // 3 empty answer
            """{"input":{"messages":[{"role":"user","content":"Hi"}]},"preferred_output":[{"role":"assistant","content":"Same"}],"non_preferred_output":[{"role":"assistant","content":"Same"}]}""", // 4 identical
            """{"input":{"messages":[{"role":"user","content":"Hi"}]},"preferred_output":[{"role":"user","content":"Yes"}],"non_preferred_output":[{"role":"assistant","content":"No"}]}""", // 5 wrong role
            """{"input":{"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Yo"}]},"preferred_output":[{"role":"assistant","content":"Yes"}],"non_preferred_output":[{"role":"assistant","content":"No"}]}""", // 6 input ends with assistant
            """{"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Yo"}]}""",                                // 7 mixed formats
            """{"input":{"messages":[]},"preferred_output":[{"role":"assistant","content":"Yes"}],"non_preferred_output":[{"role":"assistant","content":"No"}]}""", // 8 empty input
        ];

        var report = await Validate(string.Join('\n', lines));

        Assert.Equal(
            [(2, "missing_content"), (3, "missing_content"), (4, "identical_outputs"), (5, "invalid_role"), (6, "invalid_role"), (7, "invalid_format"), (8, "invalid_format")],
            report.Errors.Select(e => (e.Line ?? 0, e.Code)).ToList());
        Assert.Equal(1, report.ExampleCount);
    }

    [Fact]
    public async Task A_pair_whose_longer_side_exceeds_the_context_is_too_long_and_too_few_pairs_fail_the_file()
    {
        var longAnswer = new string('x', 400); // ~100 estimated tokens
        var row = Good.Replace("Insert a tension wrench.", longAnswer);

        var report = await Validate(row, new DatasetLimits { MinExamples = 10, MaxTokensPerExample = 64 });

        Assert.Equal([(1, "example_too_long"), (0, "too_few_examples")], report.Errors.Select(e => (e.Line ?? 0, e.Code)).ToList());
        Assert.Contains("preference pairs", report.Errors[^1].Message);
    }

    [Fact]
    public void The_reader_gives_pairs_whose_sides_train_only_on_the_answer()
    {
        var multiTurn = """
            {"input":{"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello"},{"role":"user","content":"Help me cheat"}]},"preferred_output":[{"role":"assistant","content":"No."}],"non_preferred_output":[{"role":"assistant","content":"Sure."}]}
            """;
        var pair = Assert.Single(PreferenceJsonl.Read(Utf8(multiTurn)));

        Assert.Equal(1, pair.LineNumber);
        Assert.Equal(["Hi", "Hello", "Help me cheat", "No."], pair.Chosen.Messages.Select(m => m.Content));
        Assert.Equal("Sure.", pair.Rejected.Messages[^1].Content);
        Assert.Equal([false, false, false, true], pair.Chosen.Messages.Select(m => m.IsTrainable));
        Assert.Equal([false, false, false, true], pair.Rejected.Messages.Select(m => m.IsTrainable));
    }

    [Fact]
    public void Supervised_reading_refuses_preference_rows_with_their_line()
    {
        var error = Assert.Throws<InvalidDataException>(() => ChatJsonl.Read(Utf8("\n" + Good)).ToList());
        Assert.Contains("line 2", error.Message);
        Assert.Contains("dpo", error.Message);
    }
}
