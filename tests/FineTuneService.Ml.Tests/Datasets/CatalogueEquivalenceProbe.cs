using System.Security.Cryptography;
using System.Text;
using FineTuneService.Datasets;
using FineTuneService.Datasets.Corpus;
using FineTuneService.Datasets.Evaluation;
using Legacy = FineTuneService.Ml.Tests.Datasets.Legacy;

namespace FineTuneService.Ml.Tests.Datasets;

// Temporary: today's BootstrapCorpus (a verbatim copy) against the catalogue and the corpus built on it.
public class CatalogueEquivalenceProbe
{
    public static string Digest(IEnumerable<string> lines) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(string.Join("\n", lines))));

    public static string Mix(IEnumerable<ChatExample> examples) =>
        Digest(examples.Select(e => e.LossWeight + "|" + e.LineNumber + "|" + string.Join("|", e.Messages.Select(m => m.Role + ":" + m.Content + ":" + m.Weight))));

    public static TheoryData<string> Presets => new() { "default", "test", "variant" };

    [Theory]
    [MemberData(nameof(Presets))]
    public void Catalogue_and_corpus_equal_todays_bootstrap_corpus(string preset)
    {
        (Legacy.BootstrapCorpusOptions Old, BootstrapCorpusOptions New) options = preset switch
        {
            "default" => (new(), new()),
            "test" => (new() { Sst2TrainExamples = 200, AgNewsTrainExamples = 100, Gsm8kTrainExamples = 20, SafetyTunedRefusals = 100, Passes = 1 },
                       new() { Sst2TrainExamples = 200, AgNewsTrainExamples = 100, Gsm8kTrainExamples = 20, SafetyTunedRefusals = 100, Passes = 1 }),
            _ => (new() { Sst2TrainExamples = 100, OpenEndedReplays = 1, RefusalReplayRatio = 1, RefusalExplanationChars = 240, Seed = 99 },
                  new() { Sst2TrainExamples = 100, OpenEndedReplays = 1, RefusalReplayRatio = 1, RefusalExplanationChars = 240, Seed = 99 }),
        };
        var oldCorpus = Legacy.BootstrapCorpus.Build(options: options.Old);
        var old = oldCorpus.Evaluation;
        var corpus = BootstrapCorpus.Build(options: options.New);
        var catalogue = EvaluationCatalogue.Load();
        string H(Legacy.HarmfulPrompt p) => $"{p.Source}\t{p.Category}\t{p.Key}\t{p.Prompt}";
        string H2(HarmfulPrompt p) => $"{p.Source}\t{p.Category}\t{p.Key}\t{p.Prompt}";
        Assert.Equal(old.HeldOutHarmful.Select(H), catalogue.HeldOutHarmful.Select(H2));
        Assert.Equal(old.TrainedHarmful.Select(H), catalogue.TrainingHarmful.Select(H2));
        Assert.Equal(old.XsTestSafe, catalogue.XsTestSafe);
        Assert.Equal(old.XsTestUnsafe, catalogue.XsTestUnsafe);
        Assert.Equal(old.Sst2Dev.Select(p => (p.Prompt, p.Expected, p.Task)), catalogue.Sst2Dev.Select(p => (p.Prompt, p.Expected, p.Task)));
        Assert.Equal(old.AgNewsTest.Select(p => (p.Prompt, p.Expected, p.Task)), catalogue.AgNewsTest.Select(p => (p.Prompt, p.Expected, p.Task)));
        Assert.Equal(old.Gsm8kTest.Select(p => (p.Prompt, p.Expected, p.Task)), catalogue.Gsm8kTest.Select(p => (p.Prompt, p.Expected, p.Task)));
        Assert.Equal(old.RefusalPrefixes, catalogue.RefusalPrefixes);

        Assert.Equal(Mix(oldCorpus.TrainingMix), Mix(corpus.TrainingMix));
        Assert.Equal(Mix(oldCorpus.SentimentMix), Mix(corpus.SentimentMix));
        Assert.Equal(Mix(oldCorpus.InstructionMix), Mix(corpus.InstructionMix));
        Assert.Equal(Mix(oldCorpus.RefusalMix), Mix(corpus.RefusalMix));
        Assert.Equal(Digest(oldCorpus.TokenizerTrainingText()), Digest(corpus.TokenizerTrainingText()));
        Assert.True(oldCorpus.TrainingMix.Count > 100);

        if (preset != "default") return;
        File.WriteAllLines(Environment.GetEnvironmentVariable("FTS_PROBE_OUT") ?? "/tmp/arch-research-probe.txt",
        [
            $"held_out {catalogue.HeldOutHarmful.Count} {string.Join(",", catalogue.HeldOutHarmful.CountBy(p => p.Source).Select(kv => kv.Key + "=" + kv.Value))}",
            $"training {catalogue.TrainingHarmful.Count} {string.Join(",", catalogue.TrainingHarmful.CountBy(p => p.Source).Select(kv => kv.Key + "=" + kv.Value))}",
            $"held_out_keys {Digest(catalogue.HeldOutHarmful.Select(p => p.Source + "\t" + p.Key))}",
            $"training_mix {Mix(corpus.TrainingMix)} {corpus.TrainingMix.Count}",
            $"sentiment_mix {Mix(corpus.SentimentMix)} {corpus.SentimentMix.Count}",
        ]);
    }
}
