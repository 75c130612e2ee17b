using FineTuneService.Ml.Evaluation.Evaluators;

namespace FineTuneService.Ml.Tests.Evaluation;

public class AnswerMatchingTests
{
    [Theory]
    [InlineData("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72", 72)]
    [InlineData("#### 1,250", 1250)]
    [InlineData("The total is 5 apples.\n#### -3.5", -3.5)]
    [InlineData("She pays 3 + 4 = 7 dollars, so the final answer is: 18", 18)]
    [InlineData("#### 42 and then 7 more words", 42)]
    public void Gsm8k_final_number_follows_the_marker_or_else_is_the_last_number(string text, double expected) =>
        Assert.Equal((decimal)expected, Gsm8kAnswerMatcher.ExtractFinalNumber(text));

    [Fact]
    public void Gsm8k_without_numbers_has_no_answer() => Assert.Null(Gsm8kAnswerMatcher.ExtractFinalNumber("I don't know."));

    [Theory]
    [InlineData("The answer is 72.", "Some reasoning\n#### 72", true)]
    [InlineData("72.0", "#### 72", true)]
    [InlineData("#### 71", "#### 72", false)]
    [InlineData("no idea", "#### 72", false)]
    public void Gsm8k_matcher_compares_numbers(string response, string reference, bool expected) =>
        Assert.Equal(expected, new Gsm8kAnswerMatcher().Matches(response, reference));

    [Theory]
    [InlineData("positive", "positive", true)]
    [InlineData(" Positive.\n", "positive", true)]
    [InlineData("Sci/Tech", "Sci/Tech", true)]
    [InlineData("World\nBecause the article is about politics.", "World", true)]
    [InlineData("not positive", "positive", false)]
    [InlineData("negative", "positive", false)]
    [InlineData("Sports", "World", false)]
    public void Label_matcher_is_an_exact_first_line_match(string response, string reference, bool expected) =>
        Assert.Equal(expected, new ExactLabelMatcher().Matches(response, reference));

    [Fact]
    public void Tasks_pick_their_matcher()
    {
        Assert.IsType<Gsm8kAnswerMatcher>(AnswerMatchers.For("gsm8k"));
        Assert.IsType<ExactLabelMatcher>(AnswerMatchers.For("sst2"));
    }
}
