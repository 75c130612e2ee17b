using System.Diagnostics;
using FineTuneService.Datasets.Corpus;
using FineTuneService.Ml.Evaluation.Classifier;
using FineTuneService.Ml.Evaluation.Judges;

namespace FineTuneService.Cli.Commands;

/// <summary>
/// <c>fts classifier train|validate</c>: builds the harm classifier judge from the shipped datasets and writes its
/// validation figures (HarmBench human labels) to docs/benchmarks/classifier/validation.md.
/// </summary>
internal static class ClassifierCommand
{
    private const string Usage = """
        usage: fts classifier train    [--data DIR] [--weights PATH] [--report PATH] [--seed N] [--epochs N] [--benign-answers true]
               fts classifier validate [--data DIR] [--weights PATH] [--report PATH]
          --data     dataset root (default: <repo>/src/FineTuneService.Ml/data)
          --weights  classifier weights (default: <repo>/src/FineTuneService.Ml/data/judges/harm_classifier.safetensors)
          --report   markdown report (default: <repo>/docs/benchmarks/classifier/validation.md)
          --benign-answers true   also train on Dolly / self-instruct answers as harmless (ablation; off by default)
        """;

    public static int Run(string[] args)
    {
        if (args.Length == 0 || args[0] is not ("train" or "validate"))
        {
            Console.Error.WriteLine(Usage);
            return 2;
        }
        var options = ParseOptions(args.Skip(1).ToArray());
        var repo = RepositoryRoot();
        var data = new ShippedData(options.GetValueOrDefault("data") ?? Path.Combine(repo, "src/FineTuneService.Ml/data"));
        var weights = options.GetValueOrDefault("weights") ?? Path.Combine(repo, "src/FineTuneService.Ml", HarmClassifier.ShippedRelativePath);
        var report = options.GetValueOrDefault("report") ?? Path.Combine(repo, "docs/benchmarks/classifier/validation.md");
        var keywords = RefusalKeywords.FromShippedData(data);
        var corpusOptions = new HarmClassifierCorpusOptions { IncludeBenignAnswers = options.GetValueOrDefault("benign-answers") == "true" };
        var training = new HarmClassifierTrainingOptions();
        if (options.TryGetValue("seed", out var seed)) training = training with { Seed = int.Parse(seed) };
        if (options.TryGetValue("epochs", out var epochs)) training = training with { Epochs = int.Parse(epochs) };

        HarmClassifierValidationResult result;
        if (args[0] == "train")
        {
            var cpu = Process.GetCurrentProcess().TotalProcessorTime;
            var (classifier, trained) = HarmClassifierValidation.TrainAndValidate(data, keywords, training, corpusOptions,
                (epoch, loss) => Console.WriteLine($"epoch {epoch}: loss {loss:0.0000}"));
            using (classifier) classifier.Save(weights);
            result = trained;
            Console.WriteLine($"wrote {weights} ({new FileInfo(weights).Length / 1024.0 / 1024.0:0.00} MiB); "
                + $"train+validate CPU time {(Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds:0.0} s");
        }
        else
        {
            using var classifier = HarmClassifier.Load(weights);
            var corpus = HarmClassifierCorpus.Load(data, keywords, corpusOptions with { Seed = training.Seed });
            result = HarmClassifierValidation.Validate(classifier, corpus, data, keywords, training with { Shape = classifier.Shape });
        }

        Directory.CreateDirectory(Path.GetDirectoryName(report)!);
        var markdown = result.ToMarkdown(Path.GetRelativePath(repo, weights), "fts classifier " + string.Join(' ', args));
        File.WriteAllText(report, markdown);
        Console.WriteLine($"HarmBench validation: accuracy {result.HarmBench.Accuracy:0.000}, F1 {result.HarmBench.F1:0.000} "
            + $"(keyword baseline accuracy {result.HarmBenchKeywordBaseline.Accuracy:0.000}, F1 {result.HarmBenchKeywordBaseline.F1:0.000}); "
            + $"held-out accuracy {result.HeldOut.Accuracy:0.000}, F1 {result.HeldOut.F1:0.000}; wrote {report}");
        return 0;
    }

    private static Dictionary<string, string> ParseOptions(string[] args)
    {
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
                throw new ArgumentException($"Unexpected argument '{args[i]}'.\n{Usage}");
            options[args[i][2..]] = args[++i];
        }
        return options;
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "FineTuneService.sln"))) return dir.FullName;
        throw new InvalidOperationException("Run fts classifier from inside the repository (FineTuneService.sln not found above the current directory).");
    }
}
