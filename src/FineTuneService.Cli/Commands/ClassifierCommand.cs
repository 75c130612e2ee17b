using System.Diagnostics;
using FineTuneService.Datasets.Corpus;
using FineTuneService.Ml.Evaluation.Classifier;
using FineTuneService.Ml.Evaluation.Judges;
using FineTuneService.Research.Classifier;

namespace FineTuneService.Cli.Commands;

/// <summary>
/// <c>fts classifier train</c>: builds the harm classifier judge from the shipped datasets, deterministically from a
/// seed, and writes its weights plus validation figures (HarmBench human labels) to docs/benchmarks/classifier.
/// </summary>
public sealed class ClassifierTrainCommand : ICliCommand
{
    public string Name => "classifier train";
    public string Description => "Train the harm classifier judge (seconds of CPU) and write its HarmBench validation report.";
    public string Usage => "fts classifier train [--data DIR] [--weights PATH] [--report PATH] [--seed N] [--epochs N] [--buckets N] [--hidden N] [--benign-answers]";

    public Task<int> RunAsync(CliArguments arguments, CancellationToken cancellationToken)
    {
        var setup = ClassifierCommandSetup.From(arguments);
        var training = new HarmClassifierTrainingOptions { RefusalMarkers = setup.Keywords.Keywords };
        training = training with
        {
            Seed = arguments.GetInt("seed", training.Seed),
            Epochs = arguments.GetInt("epochs", training.Epochs),
            Shape = new HarmClassifierShape(arguments.GetInt("buckets", training.Shape.Buckets), arguments.GetInt("hidden", training.Shape.Hidden)),
        };

        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var (classifier, result) = HarmClassifierValidation.TrainAndValidate(setup.Data, setup.Keywords, training, setup.CorpusOptions,
            (epoch, loss) => Console.WriteLine($"epoch {epoch}: loss {loss:0.0000}"));
        using (classifier) classifier.Save(setup.Weights);
        Console.WriteLine($"wrote {setup.Weights} ({new FileInfo(setup.Weights).Length / 1024.0 / 1024.0:0.00} MiB); "
            + $"train+validate CPU time {(Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds:0.0} s");
        setup.WriteReport(result, "fts classifier train");
        return Task.FromResult(0);
    }
}

/// <summary><c>fts classifier validate</c>: re-scores existing weights and rewrites the validation report.</summary>
public sealed class ClassifierValidateCommand : ICliCommand
{
    public string Name => "classifier validate";
    public string Description => "Score existing harm classifier weights on HarmBench's human-labelled validation set.";
    public string Usage => "fts classifier validate [--data DIR] [--weights PATH] [--report PATH] [--seed N] [--benign-answers]";

    public Task<int> RunAsync(CliArguments arguments, CancellationToken cancellationToken)
    {
        var setup = ClassifierCommandSetup.From(arguments);
        using var classifier = HarmClassifier.Load(setup.Weights);
        var training = new HarmClassifierTrainingOptions { Shape = classifier.Shape, RefusalMarkers = classifier.RefusalMarkers };
        training = training with { Seed = arguments.GetInt("seed", training.Seed) };
        var corpus = HarmClassifierCorpus.Load(setup.Data, setup.Keywords, setup.CorpusOptions with { Seed = training.Seed });
        setup.WriteReport(HarmClassifierValidation.Validate(classifier, corpus, setup.Data, setup.Keywords, training), "fts classifier validate");
        return Task.FromResult(0);
    }
}

/// <summary>Paths and data shared by the classifier commands; defaults point into the repository.</summary>
internal sealed record ClassifierCommandSetup(string Repository, ShippedData Data, RefusalKeywords Keywords,
    HarmClassifierCorpusOptions CorpusOptions, string Weights, string Report)
{
    public static ClassifierCommandSetup From(CliArguments arguments)
    {
        var repository = RepositoryRoot();
        var data = new ShippedData(arguments.Get("data", Path.Combine(repository, "src/FineTuneService.Ml/data")));
        return new ClassifierCommandSetup(
            repository,
            data,
            RefusalKeywords.FromShippedData(data),
            new HarmClassifierCorpusOptions { IncludeBenignAnswers = arguments.Has("benign-answers") },
            Path.GetFullPath(arguments.Get("weights", Path.Combine(repository, "src/FineTuneService.Ml", HarmClassifier.ShippedRelativePath))),
            Path.GetFullPath(arguments.Get("report", Path.Combine(repository, "docs/benchmarks/classifier/validation.md"))));
    }

    public void WriteReport(HarmClassifierValidationResult result, string command)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Report)!);
        File.WriteAllText(Report, result.ToMarkdown(Path.GetRelativePath(Repository, Weights), command + (CorpusOptions.IncludeBenignAnswers ? " --benign-answers" : "")));
        Console.WriteLine($"HarmBench validation: accuracy {result.HarmBench.Accuracy:0.000}, F1 {result.HarmBench.F1:0.000} "
            + $"(keyword baseline accuracy {result.HarmBenchKeywordBaseline.Accuracy:0.000}, F1 {result.HarmBenchKeywordBaseline.F1:0.000}); "
            + $"held-out accuracy {result.HeldOut.Accuracy:0.000}, F1 {result.HeldOut.F1:0.000}; wrote {Report}");
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "FineTuneService.sln"))) return dir.FullName;
        throw new CliUsageException("run fts classifier from inside the repository (FineTuneService.sln not found above the current directory).");
    }
}
