using System.Text;
using System.Text.Json;
using FineTuneService.Datasets;
using FineTuneService.Datasets.Jsonl;
using FineTuneService.TestSupport;

namespace FineTuneService.Datasets.Tests;

public class DatasetValidatorTests
{
    private const string Good = """{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello!"}]}""";

    private static MemoryStream Utf8(string text) => new(Encoding.UTF8.GetBytes(text));

    private static Task<DatasetValidationReport> Validate(string text, DatasetLimits? limits = null) =>
        DatasetValidator.ValidateAsync(Utf8(text), tokenizer: null, limits ?? new DatasetLimits { MinExamples = 1 });

    [Fact]
    public async Task Crafted_bad_file_reports_each_problem_with_its_line_and_code()
    {
        string[] lines =
        [
            Good,                                                                                     // 1
            Good,                                                                                     // 2
            """{"messages":[{"role":"user","content":"Hi"}""",                                        // 3 invalid_json
            """{"messages":[{"content":"Hi"},{"role":"assistant","content":"Yo"}]}""",                // 4 missing_role
            """{"messages":[{"role":"user","content":"Hi"}]}""",                                      // 5 no_assistant_message
            """{"messages":[{"role":"robot","content":"Hi"},{"role":"assistant","content":"Yo"}]}""", // 6 invalid_role
            """{"messages":[{"role":"user"},{"role":"assistant","content":"Yo"}]}""",                 // 7 missing_content
            """{"prompt":"Hi","completion":"Yo"}""",                                                  // 8 invalid_format (mixed)
            """{"text":"Hi"}""",                                                                      // 9 invalid_format (unknown)
            """{"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Yo","weight":2}]}""", // 10 invalid_weight
            "",                                                                                       // 11 blank, skipped
            Good,                                                                                     // 12
        ];

        var report = await Validate(string.Join('\n', lines) + "\n");

        var found = report.Errors.Select(e => (e.Line, e.Code)).ToList();
        Assert.Equal(
            [(3, "invalid_json"), (4, "missing_role"), (5, "no_assistant_message"), (6, "invalid_role"), (7, "missing_content"),
             (8, "invalid_format"), (9, "invalid_format"), (10, "invalid_weight")],
            found.Select(f => (f.Line!.Value, f.Code)).ToList());
        Assert.Equal(DatasetFormat.Chat, report.Format);
        Assert.Equal(3, report.ExampleCount);
        Assert.Equal(12, report.LineCount);
        Assert.False(report.IsValid);
    }

    [Fact]
    public async Task Fewer_examples_than_the_minimum_is_a_file_level_error()
    {
        var report = await Validate(string.Join('\n', Enumerable.Repeat(Good, 9)), DatasetLimits.Default);

        var error = Assert.Single(report.Errors);
        Assert.Equal("too_few_examples", error.Code);
        Assert.Null(error.Line);
        Assert.Equal(9, report.ExampleCount);

        var enough = await Validate(string.Join('\n', Enumerable.Repeat(Good, 10)), DatasetLimits.Default);
        Assert.True(enough.IsValid);
    }

    [Fact]
    public async Task Limits_on_lines_bytes_tokens_and_reported_errors_apply()
    {
        string file = string.Join('\n', Enumerable.Repeat(Good, 20));

        var tooManyLines = await Validate(file, new DatasetLimits { MinExamples = 1, MaxLines = 5 });
        Assert.Equal(("too_many_lines", 6), (tooManyLines.Errors.Single().Code, tooManyLines.Errors.Single().Line!.Value));

        var tooLarge = await Validate(file, new DatasetLimits { MinExamples = 1, MaxFileBytes = 100 });
        Assert.Equal("file_too_large", tooLarge.Errors.Single().Code);

        string longRow = Good.Replace("Hello!", new string('x', 400));
        var tooLong = await Validate(Good.Replace("Hello!", "Hi") + "\n" + longRow, new DatasetLimits { MinExamples = 1, MaxTokensPerExample = 50 });
        Assert.Contains(tooLong.Errors, e => e.Code == "example_too_long" && e.Line == 2);

        var capped = await Validate(string.Join('\n', Enumerable.Repeat("not json", 30)), new DatasetLimits { MinExamples = 1, MaxErrorsReported = 4 });
        Assert.Equal(4, capped.Errors.Count);
        Assert.Equal(31, capped.ErrorCount); // 30 bad rows + too_few_examples

        var strictBlank = await Validate(Good + "\n\n" + Good, new DatasetLimits { MinExamples = 1, AllowEmptyLines = false });
        Assert.Equal(("empty_line", 2), (strictBlank.Errors.Single().Code, strictBlank.Errors.Single().Line!.Value));
    }

    [Fact]
    public async Task With_a_tokenizer_token_counts_are_exact_chat_template_counts()
    {
        var tokenizer = TinyTokenizer.Trained;
        var encoder = new FineTuneService.Datasets.Sft.ChatExampleEncoder(tokenizer);
        string second = """{"prompt":"Say hi","completion":"hi"}""";
        var examples = ChatJsonl.Read(Utf8(Good)).ToList();
        int expected = encoder.CountTokens(examples[0]);

        var report = await DatasetValidator.ValidateAsync(Utf8(Good + "\n" + Good), tokenizer, new DatasetLimits { MinExamples = 1 });

        Assert.False(report.TokenCountsEstimated);
        Assert.Equal(2L * expected, report.TotalTokens);
        Assert.Equal(2L * encoder.Encode(examples[0]).TrainableTokenCount, report.TrainableTokens);
        Assert.Equal(new TokenStatistics(expected, expected, expected, expected, expected), report.TokenStats);

        var tooLong = await DatasetValidator.ValidateAsync(Utf8(Good + "\n" + second), tokenizer, new DatasetLimits { MinExamples = 1, MaxTokensPerExample = expected - 1 });
        Assert.Contains(tooLong.Errors, e => e.Code == "example_too_long" && e.Line == 1);
        Assert.Contains(tooLong.Errors, e => e.Code == "invalid_format" && e.Line == 2);
    }

    [Fact]
    public async Task Invalid_utf8_and_overlong_lines_are_reported_per_line_and_validation_continues()
    {
        var bytes = new List<byte>(Encoding.UTF8.GetBytes(Good + "\n"));
        bytes.AddRange([0x7B, 0xFF, 0xFE, 0x7D, 0x0A]);                                   // line 2: invalid UTF-8
        bytes.AddRange(Encoding.UTF8.GetBytes(Good.Replace("Hello!", new string('x', 300)) + "\n")); // line 3: too long
        bytes.AddRange(Encoding.UTF8.GetBytes(Good + "\r\n" + Good));                     // lines 4-5, CRLF

        var report = await DatasetValidator.ValidateAsync(new MemoryStream(bytes.ToArray()), null, new DatasetLimits { MinExamples = 1, MaxLineBytes = 200 });

        Assert.Equal([(2, "invalid_encoding"), (3, "line_too_long")], report.Errors.Select(e => (e.Line!.Value, e.Code)));
        Assert.Equal((3, 5), (report.ExampleCount, report.LineCount));
    }

    [Fact]
    public async Task Size_limit_holds_for_streams_of_unknown_length()
    {
        var file = Encoding.UTF8.GetBytes("\uFEFF" + string.Join('\n', Enumerable.Repeat(Good, 2000)));

        var report = await DatasetValidator.ValidateAsync(new NonSeekable(file), null, new DatasetLimits { MinExamples = 1, MaxFileBytes = 100_000 });
        var whole = await DatasetValidator.ValidateAsync(new NonSeekable(file), null, new DatasetLimits { MinExamples = 1 });

        Assert.Equal("file_too_large", report.Errors.Single().Code);
        Assert.InRange(report.LineCount, 1, 2000 - 1);
        Assert.True(whole.IsValid, string.Join("; ", whole.Errors));
        Assert.Equal((2000, file.Length), (whole.ExampleCount, (int)whole.ByteCount));
    }

    private sealed class NonSeekable(byte[] data) : MemoryStream(data)
    {
        public override bool CanSeek => false;
        public override long Length => throw new NotSupportedException();
    }

    [Fact]
    public async Task Report_serialises_to_json_with_snake_case_format()
    {
        var report = await Validate(Good + "\n" + """{"messages":[{"role":"user","content":"Hi"}]}""");

        string json = JsonSerializer.Serialize(report, new JsonSerializerOptions(JsonSerializerDefaults.Web));
        using var document = JsonDocument.Parse(json);
        Assert.Equal("chat", document.RootElement.GetProperty("format").GetString());
        Assert.Equal(2, document.RootElement.GetProperty("errors")[0].GetProperty("line").GetInt32());
        var back = JsonSerializer.Deserialize<DatasetValidationReport>(json, new JsonSerializerOptions(JsonSerializerDefaults.Web))!;
        Assert.Equal(report.Errors, back.Errors);
        Assert.Equal(report.TokenStats, back.TokenStats);
    }

    [Fact]
    public void Reader_yields_examples_with_weights_and_rejects_bad_rows_by_line()
    {
        string file = Good + "\n\n" + """{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b","weight":0},{"role":"user","content":"c"},{"role":"assistant","content":"d"}]}""";
        var examples = ChatJsonl.Read(Utf8(file)).ToList();
        Assert.Equal([1, 3], examples.Select(e => e.LineNumber));
        Assert.Equal([null, 0, null, null], examples[1].Messages.Select(m => m.Weight));
        Assert.False(examples[1].Messages[1].IsTrainable);

        var completion = ChatJsonl.Read(Utf8("""{"prompt":"p","completion":"c"}""")).Single();
        Assert.Equal([new ChatMessage("user", "p"), new ChatMessage("assistant", "c")], completion.Messages);

        var error = Assert.Throws<InvalidDataException>(() => ChatJsonl.Read(Utf8(Good + "\n" + Good + "\n{oops")).ToList());
        Assert.StartsWith("line 3: invalid_json", error.Message);
    }
}
