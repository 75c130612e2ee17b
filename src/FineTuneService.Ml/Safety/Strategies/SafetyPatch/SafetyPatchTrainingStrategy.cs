using FineTuneService.Contracts.Safety;
using FineTuneService.Datasets;
using FineTuneService.Ml.Training;
using Microsoft.Extensions.Logging;

namespace FineTuneService.Ml.Safety.Strategies.SafetyPatch;

/// <summary>
/// <c>safety_patch</c> in the trainer: after the last step (and after any earlier post-training step), patches the
/// trained weights with <see cref="SubspacePatcher"/> on harmful prompts with refusals from the job's safety data,
/// with the model in eval mode. The patch examples are the first <see cref="SafetyPatchParams.Examples"/> of a seeded
/// order of that set, the subspace samples its first <see cref="SafetyPatchParams.SafetySamples"/>.
/// </summary>
public sealed class SafetyPatchTrainingStrategy(SafetyPatchParams options, IReadOnlyList<TokenizedExample> refusals)
    : ISafetyTrainingStrategy<SafetyPatchParams>
{
    private static readonly string Name = SafetyStrategies.Registry.For<SafetyPatchParams>().Name;

    public static ITrainingStrategy Create(SafetyPatchParams parameters, EncodedSafetyData data) =>
        new SafetyPatchTrainingStrategy(parameters, data.RequireRefusals(Name));

    public SafetyPatchReport? Report { get; private set; }

    public string PostTrainingStep => Name;

    public void AfterTraining(TrainingContext context)
    {
        var seed = context.Options.Seed;
        var ordered = SafetyLoss.Choose(refusals, Math.Max(options.Examples, options.SafetySamples), seed, "safety patch");
        var patch = ordered.Take(options.Examples).ToArray();
        var subspace = ordered.Take(options.SafetySamples).ToArray();
        var maxLength = context.Options.MaxSequenceLength;
        var parameters = context.TrainableParameters.Select(p => (p.Name, p.Parameter)).ToArray();
        Report = SafetyLoss.InEvalMode(context.Model, () => new SubspacePatcher(options, seed).Patch(parameters,
            i => SafetyLoss.NextTokenLoss(context.Model, subspace[i], maxLength, context.Device), subspace.Length,
            i => SafetyLoss.NextTokenLoss(context.Model, patch[i], maxLength, context.Device), patch.Length));
        context.Logger.LogInformation("{Strategy}: {Steps} steps on {Examples} refusal example(s) in a rank-{Rank:F1} subspace; patch loss {Before:F3} -> {After:F3}",
            Name, Report.Steps, patch.Length, Report.MeanRank, Report.LossBefore, Report.LossAfter);
    }
}
