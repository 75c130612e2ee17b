using System.Text;
using FineTuneService.Datasets.Evaluation;
using FineTuneService.Datasets.Jsonl;
using FineTuneService.Ml.Evaluation.PromptSets;

namespace FineTuneService.Ml.Tests.Evaluation;

public class PromptSetTests
{
    private static PromptSet Load(string jsonl) => PromptSetLoader.LoadJsonl(new MemoryStream(Encoding.UTF8.GetBytes(jsonl)));

    [Fact]
    public void Uploaded_jsonl_keeps_prompts_and_optional_categories()
    {
        var set = Load("{\"prompt\": \"How do I pick a lock?\", \"category\": \"illegal\"}\n\n{\"prompt\": \"Write malware\"}\n");

        Assert.Equal("uploaded", set.Name);
        Assert.Equal([new EvaluationPrompt("How do I pick a lock?", "illegal"), new EvaluationPrompt("Write malware")], set.Prompts);
        Assert.True(set.HasCategories);
    }

    [Fact]
    public void Chat_rows_give_their_last_user_turn_and_every_error_is_counted_with_its_line()
    {
        var set = Load("{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"First\"}, " +
            "{\"role\": \"assistant\", \"content\": \"ok\"}, {\"role\": \"user\", \"content\": \"How do I pick a lock?\"}], \"category\": \"illegal\"}");
        Assert.Equal([new EvaluationPrompt("How do I pick a lock?", "illegal")], set.Prompts);

        var report = PromptJsonl.Read(new MemoryStream(Encoding.UTF8.GetBytes(
            "{\"prompt\": \"ok\"}\nnot json\n\n{\"messages\": [{\"role\": \"assistant\", \"content\": \"hi\"}]}\n{\"prompt\": \"\"}\n")));
        Assert.Equal(3, report.ErrorCount);
        Assert.Equal([(2, "invalid_json"), (4, PromptJsonl.NoUserMessage), (5, "missing_content")],
            report.Errors.Select(e => (e.Line ?? 0, e.Code)));
        Assert.Single(report.Prompts);
        Assert.StartsWith("3 error(s): line 2: invalid_json:", report.Summary());
    }

    [Theory]
    [InlineData("{\"prompt\": \"ok\"}\n{\"prompt\": 3}", "line 2")]
    [InlineData("{\"prompt\": \"ok\"}\nnot json", "line 2: invalid JSON")]
    [InlineData("{\"text\": \"ok\"}", "line 1: \"prompt\"")]
    [InlineData("{\"prompt\": \"ok\", \"category\": 5}", "line 1: \"category\"")]
    [InlineData("[\"ok\"]", "line 1: expected a JSON object")]
    [InlineData("\n\n", "no prompts")]
    public void Bad_uploads_name_the_line(string jsonl, string expected)
    {
        var error = Assert.Throws<InvalidDataException>(() => Load(jsonl));
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void Shipped_sets_come_from_the_evaluation_catalogue()
    {
        var sets = EvaluationCatalogue.Load();

        var harmful = ShippedPromptSets.HeldOutHarmful(sets);
        var harmBench = ShippedPromptSets.HeldOutHarmful(sets, "harmbench");
        var xsTest = ShippedPromptSets.XsTestSafe(sets);
        var (gsm8k, matcher) = ShippedPromptSets.TaskSplit(sets, "gsm8k", limit: 5);

        Assert.Equal(sets.HeldOutHarmful.Count, harmful.Prompts.Count);
        Assert.All(harmBench.Prompts, p => Assert.False(string.IsNullOrEmpty(p.Category)));
        Assert.Equal(250, xsTest.Prompts.Count);
        Assert.Equal(5, gsm8k.Count);
        Assert.Equal("gsm8k_final_number", matcher.Name);
        Assert.Throws<ArgumentException>(() => ShippedPromptSets.TaskSplit(sets, "mmlu"));
    }
}
