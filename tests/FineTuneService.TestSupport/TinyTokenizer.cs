using FineTuneService.Datasets.Tokenization;

namespace FineTuneService.TestSupport;

/// <summary>
/// A 400-token byte-level BPE trained on a seeded word salad, shared by the text-layer and engine tests. Torch-free:
/// the Datasets tests compile this file in, since they do not reference this (engine) project.
/// </summary>
public static class TinyTokenizer
{
    public static IReadOnlyList<string> Corpus { get; } = BuildCorpus();

    public static ByteLevelBpeTokenizer Trained { get; } = BpeTrainer.Train(Corpus, new BpeTrainerOptions { VocabularySize = 400 });

    private static List<string> BuildCorpus()
    {
        string[] words =
        [
            "the", "model", "refuses", "harmful", "requests", "and", "answers", "helpful", "questions", "tokenizer", "training",
            "data", "safety", "assistant", "user", "positive", "negative", "sports", "business", "world", "science", "news",
            "café", "naïve", "日本語", "emoji", "😀", "123", "4567", "it's", "we're", "don't", "!", "?", ",", ".", "(", ")",
        ];
        var random = new Random(7);
        var lines = new List<string>();
        for (int i = 0; i < 400; i++)
        {
            int length = random.Next(5, 30);
            lines.Add(string.Join(random.Next(6) == 0 ? "\n" : " ", Enumerable.Range(0, length).Select(_ => words[random.Next(words.Length)])));
        }

        return lines;
    }
}
