using FineTuneService.Datasets;
using FineTuneService.Datasets.Corpus;
using FineTuneService.Datasets.Evaluation;
using FineTuneService.Research.Bootstrap;

namespace FineTuneService.Ml.Tests.Bootstrap;

public class BootstrapCorpusTests
{
    private static readonly Lazy<BootstrapCorpus> Corpus = new(() => BootstrapCorpus.Build());

    [Fact]
    public void Shipped_data_is_next_to_the_binaries_with_the_documented_row_counts()
    {
        var data = new ShippedData();

        Assert.Equal(417, data.AdvBench().Count);
        Assert.Equal(340, data.HarmBench().Count);
        Assert.Equal(82, data.JailbreakBench().Count);
        Assert.Equal(510, data.HarmBenchClassifierValidation().Count);
        Assert.Equal(200, data.BeaverTailsUnsafe().Count);
        Assert.Equal(1000, data.SafetyTunedRefusals().Count);
        Assert.Equal(400, data.HhRlhfHarmless().Count);
        Assert.Equal((450, 250), (data.XsTest().Count, data.XsTest().Count(p => p.IsSafe)));
        Assert.Equal(427, data.SelfInstruct().Count);
        Assert.Equal(236, data.Dolly().Count);
        Assert.Equal((600, 300), (data.Gsm8k("train").Count, data.Gsm8k("test").Count));
        Assert.Equal((4000, 16000, 872), (data.Sst2("train").Count, data.Sst2("train_extra").Count, data.Sst2("dev").Count));
        Assert.Empty(data.Sst2("train").Select(r => r.Text).Intersect(data.Sst2("train_extra").Select(r => r.Text)));
        Assert.Equal(444, data.Sst2("dev").Count(r => r.Label == "positive"));
        Assert.Equal((1000, 1000), (data.AgNews("train").Count, data.AgNews("test").Count));
        Assert.All(data.AgNews("test").Concat(data.AgNews("train")), r => Assert.Contains(r.Label, data.AgNewsClasses()));
        Assert.Equal(29, data.RefusalPrefixes().Count);
        Assert.Contains(data.HarmBench(), b => b.ContextString.Contains('\n')); // multi-line quoted CSV fields parse
    }

    [Fact]
    public void Held_out_harmful_prompts_never_appear_in_any_training_example()
    {
        var corpus = Corpus.Value;
        var heldOut = corpus.Evaluation.HeldOutHarmful;
        int total = heldOut.Count + corpus.Evaluation.TrainingHarmful.Count;

        Assert.InRange(heldOut.Count / (double)total, 0.2, 0.4);
        Assert.All(heldOut, p => Assert.True(HeldOutSplit.IsHeldOut(p.Key)));
        var trainingPrompts = corpus.TrainingMix.Concat(corpus.SentimentMix)
            .SelectMany(e => e.Messages.Where(m => m.Role == ChatMessage.User))
            .Select(m => HeldOutSplit.Normalize(m.Content))
            .ToList();
        foreach (var prompt in heldOut)
        {
            string key = HeldOutSplit.Normalize(prompt.Key);
            Assert.DoesNotContain(trainingPrompts, t => t.Contains(key, StringComparison.Ordinal));
        }

        var trainedKeys = corpus.Evaluation.TrainingHarmful.Select(p => HeldOutSplit.Normalize(p.Prompt)).ToHashSet();
        Assert.Equal(trainedKeys.Count, corpus.RefusalMix.Count(e => trainedKeys.Contains(HeldOutSplit.Normalize(e.Messages[0].Content))));
    }

    [Fact]
    public void Same_seed_gives_the_same_corpus_and_another_seed_reorders_it()
    {
        var again = BootstrapCorpus.Build(options: new BootstrapCorpusOptions());
        var other = BootstrapCorpus.Build(options: new BootstrapCorpusOptions { Seed = 99 });

        Assert.Equal(Corpus.Value.TrainingMix.Select(Render), again.TrainingMix.Select(Render));
        Assert.NotEqual(Corpus.Value.TrainingMix.Select(Render), other.TrainingMix.Select(Render));
        Assert.Equal(Corpus.Value.Evaluation.HeldOutHarmful, other.Evaluation.HeldOutHarmful);

        static string Render(ChatExample e) => string.Join("|", e.Messages.Select(m => m.Role + ":" + m.Content));
    }

    [Fact]
    public void Instruction_mix_phrases_classification_with_exact_short_answers()
    {
        var corpus = Corpus.Value;
        var sentiment = corpus.InstructionMix.Where(e => e.Messages[0].Content.StartsWith(TaskPrompts.Sst2Instruction)).ToList();
        var news = corpus.InstructionMix.Where(e => e.Messages[0].Content.StartsWith("Categorize the news article")).ToList();

        Assert.Equal(corpus.Options.Sst2TrainExamples, sentiment.Count);
        Assert.All(sentiment, e => Assert.Contains(e.Messages[1].Content, new[] { "positive", "negative" }));
        Assert.Equal(corpus.Options.AgNewsTrainExamples, news.Count);
        Assert.All(news, e => Assert.Contains(e.Messages[1].Content, new[] { "World", "Sports", "Business", "Sci/Tech" }));
        Assert.Contains(corpus.InstructionMix, e => e.Messages[1].Content.Contains("The final answer is: "));
        // Every refusal reply (templated or Safety-Tuned LLaMAs) carries a GCG refusal prefix, the keyword judge's list.
        Assert.All(corpus.RefusalMix, e => Assert.Contains(corpus.Evaluation.RefusalPrefixes, p => e.Messages[1].Content.Contains(p, StringComparison.Ordinal)));
    }

    [Fact]
    public void First_phase_repeats_all_but_sst2_and_the_sentiment_phase_replays_open_ended_instructions_with_a_share_of_refusals()
    {
        var corpus = Corpus.Value;
        var options = corpus.Options;
        static bool IsSentiment(ChatExample e) => e.Messages[0].Content.StartsWith(TaskPrompts.Sst2Instruction);
        static bool IsLabelTask(ChatExample e) => IsSentiment(e) || e.Messages[0].Content.StartsWith(TaskPrompts.AgNewsInstruction);

        var repeated = corpus.InstructionMix.Where(e => !IsSentiment(e)).Concat(corpus.RefusalMix).ToList();
        Assert.Equal(repeated.Count * options.Passes, corpus.TrainingMix.Count);
        Assert.DoesNotContain(corpus.TrainingMix, IsSentiment);

        var sentiment = corpus.SentimentMix.Where(IsSentiment).ToList();
        Assert.Equal(options.Sst2TrainExamples, sentiment.Count);
        Assert.Equal(sentiment.Count, sentiment.Distinct(ReferenceEqualityComparer.Instance).Count()); // each row once
        var replay = corpus.SentimentMix.Where(e => !IsSentiment(e)).ToList();
        var refusals = corpus.RefusalMix.ToHashSet(ReferenceEqualityComparer.Instance);
        var openEnded = replay.Where(e => !refusals.Contains(e)).ToList();
        Assert.Equal(options.OpenEndedReplays * (int)(corpus.RefusalMix.Count * options.RefusalReplayRatio / options.OpenEndedRepeats), replay.Count(refusals.Contains));
        Assert.All(openEnded.CountBy(e => e, ReferenceEqualityComparer.Instance), group => Assert.Equal(options.OpenEndedReplays, group.Value));
        Assert.DoesNotContain(replay, IsLabelTask);

        Assert.All(corpus.TrainingMix.Concat(corpus.SentimentMix), e => Assert.Equal(IsLabelTask(e) ? options.LabelLossWeight : 1f, e.LossWeight));
    }

    [Fact]
    public void Sentiment_phase_replay_and_refusal_explanations_follow_their_options()
    {
        var options = new BootstrapCorpusOptions { Sst2TrainExamples = 100, OpenEndedReplays = 1, RefusalReplayRatio = 1, RefusalExplanationChars = 240 };
        var corpus = BootstrapCorpus.Build(options: options);
        var defaults = Corpus.Value;

        var refusals = corpus.RefusalMix.ToHashSet(ReferenceEqualityComparer.Instance);
        var openEnded = corpus.SentimentMix.Count(e => !refusals.Contains(e)) - 100;
        Assert.Equal(corpus.RefusalMix.Count / options.OpenEndedRepeats, corpus.SentimentMix.Count(refusals.Contains));
        Assert.Equal(defaults.SentimentMix.Count(e => !defaults.RefusalMix.Contains(e)) - defaults.Options.Sst2TrainExamples, openEnded * defaults.Options.OpenEndedReplays);
        // One-sentence refusals by default; with explanations, Safety-Tuned answers keep their first sentences.
        Assert.All(defaults.RefusalMix, e => Assert.Contains(e.Messages[1].Content, BootstrapCorpus.RefusalReplies));
        Assert.Contains(corpus.RefusalMix, e => !BootstrapCorpus.RefusalReplies.Contains(e.Messages[1].Content));
    }

    [Fact]
    public void Tokenizer_text_does_not_depend_on_the_sentiment_phase_settings()
    {
        var smallerSentimentPhase = BootstrapCorpus.Build(options: new BootstrapCorpusOptions { Sst2TrainExamples = 300 });
        var text = Corpus.Value.TokenizerTrainingText().ToList();

        Assert.Equal(text, smallerSentimentPhase.TokenizerTrainingText());
        Assert.Contains(text, t => t.StartsWith(TaskPrompts.Sst2Instruction, StringComparison.Ordinal)); // every shipped SST-2 row
    }

    [Fact]
    public void Hh_transcripts_parse_into_alternating_turns()
    {
        var messages = HhDialogue.ToMessages("\n\nHuman: hi there\n\nAssistant: Hello.\nHow can I help?\n\nHuman: bye\n\nAssistant: Bye!");

        Assert.Equal(["user", "assistant", "user", "assistant"], messages.Select(m => m.Role));
        Assert.Equal("Hello.\nHow can I help?", messages[1].Content);
    }
}
