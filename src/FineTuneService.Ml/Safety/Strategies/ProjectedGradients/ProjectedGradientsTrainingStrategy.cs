using FineTuneService.Contracts.Safety;
using FineTuneService.Datasets;
using FineTuneService.Ml.Training;
using Microsoft.Extensions.Logging;

namespace FineTuneService.Ml.Safety.Strategies.ProjectedGradients;

/// <summary>
/// <c>projected_gradients</c> in the trainer: edits the trainable gradients on every step (see
/// <see cref="GradientProjector"/>). The safety loss is the answer-token loss of harmful prompts with refusal
/// answers, computed with the model in eval mode. On resume the safety statistics are re-estimated at the first step.
/// </summary>
public sealed class ProjectedGradientsTrainingStrategy(ProjectedGradientsParams options, IReadOnlyList<TokenizedExample> safetyExamples)
    : ISafetyTrainingStrategy<ProjectedGradientsParams>, IDisposable
{
    private static readonly string Name = SafetyStrategies.Registry.For<ProjectedGradientsParams>().Name;

    public static ITrainingStrategy Create(ProjectedGradientsParams parameters, EncodedSafetyData data) =>
        new ProjectedGradientsTrainingStrategy(parameters, data.RequireRefusals(Name));

    private GradientProjector? _projector;
    private IReadOnlyList<TokenizedExample> _samples = [];

    /// <summary>Current safety statistics per trainable parameter (empty before the first step).</summary>
    public IReadOnlyDictionary<string, SafetySubspace> Subspaces => _projector?.Subspaces ?? new Dictionary<string, SafetySubspace>();

    /// <summary>Report of the last step.</summary>
    public GradientEditReport? LastReport { get; private set; }

    /// <summary>Steps on which at least one gradient was edited.</summary>
    public int EditedSteps { get; private set; }

    public void BeforeTraining(TrainingContext context)
    {
        _projector?.Dispose();
        _projector = new GradientProjector(options, context.Options.Seed);
        _samples = SafetyLoss.Choose(safetyExamples, options.SafetySamples, context.Options.Seed, "safety");
    }

    public void OnGradients(TrainingContext context, int step)
    {
        var projector = _projector ?? throw new InvalidOperationException("BeforeTraining has not run.");
        var parameters = context.TrainableParameters.Select(p => (p.Name, p.Parameter)).ToArray();
        var report = SafetyLoss.InEvalMode(context.Model, () => projector.OnGradients(step, parameters,
            i => SafetyLoss.NextTokenLoss(context.Model, _samples[i % _samples.Count], context.Options.MaxSequenceLength, context.Device)));
        LastReport = report;
        if (report.Conflicting > 0) EditedSteps++;
        if (report.Refreshed)
            context.Logger.LogInformation("{Strategy} ({Variant}): safety statistics refreshed at step {Step}; {Edited}/{Total} gradients conflicted",
                Name, options.Variant, step, report.Conflicting, report.Parameters);
    }

    public void Dispose() => _projector?.Dispose();
}
