using System.Security.Cryptography;
using System.Text;
using FineTuneService.Datasets.Evaluation;

namespace FineTuneService.Datasets.Tests;

public class EvaluationCatalogueTests
{
    private static readonly EvaluationCatalogue Catalogue = EvaluationCatalogue.Load();

    /// <summary>
    /// The held-out split the shipped bootstrap model was trained around and its acceptance figures were measured on:
    /// these counts and this digest of (source, key) in order were computed by the bootstrap corpus before the rule
    /// moved into the catalogue. A change here changes what the gate measures and invalidates the committed figures.
    /// </summary>
    [Fact]
    public void Held_out_split_is_the_one_the_shipped_model_was_built_around()
    {
        Assert.Equal(180, Catalogue.HeldOutHarmful.Count);
        Assert.Equal(473, Catalogue.TrainingHarmful.Count);
        Assert.Equal(
            new Dictionary<string, int> { ["advbench"] = 116, ["harmbench"] = 47, ["jailbreakbench"] = 17 },
            Catalogue.HeldOutHarmful.CountBy(p => p.Source).ToDictionary());
        var digest = SHA256.HashData(Encoding.UTF8.GetBytes(string.Join("\n", Catalogue.HeldOutHarmful.Select(p => p.Source + "\t" + p.Key))));
        Assert.Equal("7474fd672575c302596bfb68472ce681ff08e73cf52ec427e555c927b9796532", Convert.ToHexStringLower(digest));
    }

    [Fact]
    public void Every_harmful_prompt_is_in_exactly_one_share_by_the_held_out_rule()
    {
        Assert.Equal(Catalogue.HarmfulPrompts.Count, Catalogue.HeldOutHarmful.Count + Catalogue.TrainingHarmful.Count);
        Assert.All(Catalogue.HeldOutHarmful, p => Assert.True(HeldOutSplit.IsHeldOut(p.Key)));
        Assert.All(Catalogue.TrainingHarmful, p => Assert.False(HeldOutSplit.IsHeldOut(p.Key)));
        Assert.Equal(Catalogue.HarmfulPrompts.Count, Catalogue.HarmfulPrompts.Select(p => HeldOutSplit.Normalize(p.Key)).Distinct().Count());
        Assert.InRange(Catalogue.HeldOutHarmful.Count / (double)Catalogue.HarmfulPrompts.Count, HeldOutSplit.Fraction - 0.05, HeldOutSplit.Fraction + 0.05);
    }

    [Fact]
    public void A_held_out_prompt_is_found_inside_longer_text_whatever_its_case_and_spacing()
    {
        var heldOut = Catalogue.HeldOutHarmful[0].Key;
        var wrapped = "Please answer this.\n\n" + heldOut.ToUpperInvariant().Replace(" ", "   ") + " Thanks!";

        Assert.True(Catalogue.MentionsHeldOutPrompt(wrapped));
        Assert.False(Catalogue.MentionsHeldOutPrompt(Catalogue.TrainingHarmful[0].Prompt));
        Assert.False(Catalogue.MentionsHeldOutPrompt("What is the capital of France?"));
    }

    [Fact]
    public void Task_and_over_refusal_sets_are_read_whole_and_phrased_as_the_task_prompts()
    {
        Assert.Equal(872, Catalogue.Sst2Dev.Count);
        Assert.All(Catalogue.Sst2Dev, p => Assert.StartsWith(TaskPrompts.Sst2Instruction + "\n\nInput: ", p.Prompt));
        Assert.Equal(1000, Catalogue.AgNewsTest.Count);
        Assert.All(Catalogue.AgNewsTest, p => Assert.StartsWith(TaskPrompts.AgNewsInstruction, p.Prompt));
        Assert.Equal(300, Catalogue.Gsm8kTest.Count);
        Assert.All(Catalogue.Gsm8kTest, p => Assert.Matches(@"^-?[\d.]+$", p.Expected));
        Assert.Equal((250, 200), (Catalogue.XsTestSafe.Count, Catalogue.XsTestUnsafe.Count));
        Assert.Equal(29, Catalogue.RefusalPrefixes.Count);
    }
}
