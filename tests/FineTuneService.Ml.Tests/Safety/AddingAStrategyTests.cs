using System.Text.Json.Nodes;
using FineTuneService.Contracts.Safety;
using FineTuneService.Ml.Safety.Strategies;
using FineTuneService.Ml.Safety.Strategies.Merge;
using FineTuneService.Ml.Training;

namespace FineTuneService.Ml.Tests.Safety;

/// <summary>
/// The recipe of CONTRIBUTING.md, end to end: a parameters record, the class that runs it, and one registration make
/// a strategy the engine builds in run order beside the shipped ones. Nothing else is edited.
/// </summary>
public sealed class AddingAStrategyTests
{
    public sealed record GradientScaleParams(double Factor = 0.5) : ISafetyStrategyParams
    {
        public IEnumerable<ParamError> Errors(ModelFacts model)
        {
            if (!(Factor is > 0 and <= 1)) yield return new("factor", $"factor must be in (0, 1], got {Factor}.");
        }
    }

    public sealed class GradientScaleTrainingStrategy(double factor) : ISafetyTrainingStrategy<GradientScaleParams>
    {
        public static ITrainingStrategy Create(GradientScaleParams parameters, EncodedSafetyData data) => new GradientScaleTrainingStrategy(parameters.Factor);

        public double Factor { get; } = factor;

        public void OnGradients(TrainingContext context, int step)
        {
            foreach (var (_, parameter) in context.TrainableParameters) parameter.grad?.mul_(Factor);
        }
    }

    private static readonly SafetyStrategyRegistry Registry = new(
        [.. SafetyStrategies.Registry.All, SafetyStrategy.Define<GradientScaleParams>("gradient_scale", SafetyPhase.EveryStep, "Scales every gradient down.")]);

    [Fact]
    public void The_engine_finds_the_class_of_a_new_registration_by_its_parameters()
    {
        var plan = SafetyPlan.FromRequest(JsonNode.Parse("""
            {"strategy": ["merge", "gradient_scale"], "params": {"gradient_scale": {"factor": 0.25}}}
            """)!.AsObject(), Registry);

        var strategies = SafetyTrainingStrategies.Create(plan, new EncodedSafetyData());

        Assert.Equal([typeof(GradientScaleTrainingStrategy), typeof(MergeTrainingStrategy)], strategies.Select(s => s.GetType()));
        Assert.Equal(0.25, ((GradientScaleTrainingStrategy)strategies[0]).Factor);
    }

    [Fact]
    public void Every_shipped_strategy_has_exactly_one_engine_class()
    {
        foreach (var strategy in SafetyStrategies.Registry.All)
            Assert.True(typeof(ITrainingStrategy).IsAssignableFrom(SafetyTrainingStrategies.ClassOf(strategy)), strategy.Name);
    }
}
